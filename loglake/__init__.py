"""Shared pieces of the loglake jobs: settings, table contract, Spark session, metrics."""

__version__ = "0.1.0"
