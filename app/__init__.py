"""The loglake application: the ``loglake`` command, the demo and the load generator.

The only code that imports the jobs (ingest, gdpr, compaction); the shared library below it imports none.
"""
