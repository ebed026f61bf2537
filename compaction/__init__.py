"""Table services beside the live stream: execute compaction plans, cluster, clean and archive."""
