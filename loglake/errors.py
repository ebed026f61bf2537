"""Named exceptions. Each message carries the bad value and, where there is one, the fix."""


class LoglakeError(Exception):
    """Base of every error the CLI reports without a traceback."""


class ConfigError(LoglakeError):
    """A setting is missing or has a bad value; the message names the setting."""


class SetupError(LoglakeError):
    """Something the job needs on this machine (jars, java, maven) is missing."""


class BrokerError(LoglakeError):
    """The local Kafka broker could not be started, stopped or reached."""


class RegistryError(LoglakeError):
    """The local schema registry could not be started, stopped or reached, or it refused a schema."""


class MetastoreError(LoglakeError):
    """The local Hive Metastore could not be started, stopped or reached, or it answered a call with an error."""


class CatalogSyncError(LoglakeError):
    """Registering a table or its partitions in the metastore failed; the table's commits stand."""

    exit_code = 8


class SourceUnavailableError(LoglakeError):
    """The Kafka bootstrap servers do not answer or the topic does not exist."""


class TableError(LoglakeError):
    """The table path is missing, is not a Hudi table, or is not the loglake contract."""


class WriteConflictError(LoglakeError):
    """A Hudi commit kept losing optimistic-concurrency conflicts after every retry."""


class CheckpointInUseError(ConfigError):
    """Another live stream holds the checkpoint; the message names it."""


class StreamFailedError(LoglakeError):
    """The ingest stream stopped; the message names the cause, the value and the setting to change."""

    exit_code = 1


class KafkaDataLossError(StreamFailedError):
    """Offsets the stream had not read yet were deleted from Kafka (retention, delete-records)."""

    exit_code = 5


class StorageFullError(StreamFailedError):
    """A write failed because its file system had no space left (or its quota was reached)."""

    exit_code = 6


class SchemaRegistryUnavailableError(StreamFailedError):
    """The schema registry did not answer while a micro-batch needed a writer schema from it."""

    exit_code = 7
