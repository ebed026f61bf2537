"""Deploy code: cluster definitions rendered from settings (the rest of ``deploy/`` is configuration)."""
