"""Local development servers for a workstation and the tests: Kafka, a schema registry, a Hive metastore.

Not part of the product: production runs against the user's own Kafka, registry and catalog.
"""
