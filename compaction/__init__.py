"""Compaction and table services job (see issue 4)."""
