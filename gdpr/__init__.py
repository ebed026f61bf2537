"""GDPR erasure job (see issue 3)."""
