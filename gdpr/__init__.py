"""GDPR erasure and retention: delete data subjects' records, purge and verify them, expire old partitions."""
