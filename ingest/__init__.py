"""Streaming ingest: Kafka log batches into a Hudi merge-on-read table."""
