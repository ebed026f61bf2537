"""Amazon EMR: the long-running stream cluster and the transient erasure and compaction clusters."""
