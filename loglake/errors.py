"""Named exceptions. Each message carries the bad value and, where there is one, the fix."""


class LoglakeError(Exception):
    """Base of every error the CLI reports without a traceback."""


class ConfigError(LoglakeError):
    """A setting is missing or has a bad value; the message names the setting."""


class SetupError(LoglakeError):
    """Something the job needs on this machine (jars, java, maven) is missing."""


class BrokerError(LoglakeError):
    """The local Kafka broker could not be started, stopped or reached."""


class SourceUnavailableError(LoglakeError):
    """The Kafka bootstrap servers do not answer or the topic does not exist."""


class TableError(LoglakeError):
    """The table path is missing, is not a Hudi table, or is not the loglake contract."""


class WriteConflictError(LoglakeError):
    """A Hudi commit kept losing optimistic-concurrency conflicts after every retry."""
