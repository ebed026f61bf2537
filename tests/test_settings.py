import re
from pathlib import Path

import pytest

from loglake.errors import ConfigError
from loglake.settings import load_settings, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5 minutes", 300), ("30 seconds", 30), ("1 hour", 3600), ("250 ms", 0.25), ("2m", 120), ("10s", 10)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_defaults_derive_quarantine_and_checkpoint_from_table_path() -> None:
    s = load_settings(overrides={"table.path": "/data/logs/"})
    assert s.table.effective_quarantine_path == "/data/logs_quarantine"
    assert s.checkpoint_dir == "/data/logs_checkpoints/loglake_ingest"
    assert s.ingest.trigger_seconds == 300


def test_yaml_file_then_set_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "table: {path: /a}\n"
        "ingest: {trigger: 1 minute, encoding: json}\n"
        "hoodie:\n  parquet.max.file.size: 1000\n  hoodie.metadata.enable: false\n"
        "spark:\n  conf:\n    driver.memory: 1g\n"
    )
    s = load_settings(
        cfg, overrides={"table.path": "/b"}, assignments=["ingest.trigger=2 minutes", "spark.ui.enabled=false"]
    )
    assert s.table.path == "/b"
    assert s.ingest.trigger == "2 minutes"
    assert s.ingest.encoding == "json"
    assert s.hoodie == {"hoodie.parquet.max.file.size": "1000", "hoodie.metadata.enable": "false"}
    # Pass-through values given with --set keep their exact text.
    assert s.spark.conf == {"spark.driver.memory": "1g", "spark.ui.enabled": "false"}


def test_kafka_options_keep_dotted_names_and_are_masked() -> None:
    s = load_settings(
        assignments=[
            "kafka.options.kafka.sasl.jaas.config=secret-stuff",
            "kafka.options.kafka.security.protocol=SASL_SSL",
        ]
    )
    assert s.kafka.options["kafka.sasl.jaas.config"] == "secret-stuff"
    masked = s.masked()["kafka"]["options"]
    assert masked["kafka.sasl.jaas.config"] == "****"
    assert masked["kafka.security.protocol"] == "SASL_SSL"


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("ingest.trigger=soon", "ingest.trigger"),
        ("ingest.trigerr=1 minute", "ingest.trigerr"),
        ("kafka.bootstrap_servers=nohost", "kafka.bootstrap_servers"),
        ("metrics.port=70000", "metrics.port"),
        ("ingest.encoding=xml", "ingest.encoding"),
        ("ingest.max_message_bytes=0", "ingest.max_message_bytes"),
        ("table.name=bad-name", "table.name"),
    ],
)
def test_bad_values_name_the_setting(assignment: str, named: str) -> None:
    with pytest.raises(ConfigError, match=rf"setting {named}\b"):
        load_settings(assignments=[assignment])


def test_missing_table_path_names_the_setting_and_flag() -> None:
    s = load_settings()
    with pytest.raises(ConfigError, match=r"table\.path.*--table-path"):
        s.table.require_path()


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("table: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_settings(tmp_path / "missing.yaml")


def test_assignment_without_equals_is_rejected() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_settings(assignments=["ingest.trigger"])


def test_quarantine_path_must_differ_from_table_path() -> None:
    with pytest.raises(ConfigError, match="quarantine_path"):
        load_settings(overrides={"table.path": "/x", "table.quarantine_path": "/x/"})


def test_ledger_salt_from_the_environment_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGLAKE_LEDGER_SALT", "pepper-123")
    settings = load_settings(assignments=["table.path=/x"])
    assert settings.gdpr.ledger_salt == "pepper-123"
    assert settings.masked()["gdpr"]["ledger_salt"] == "****"


def test_spark_options_by_name_or_by_their_yaml_path() -> None:
    s = load_settings(assignments=["spark.sql.shuffle.partitions=8", "spark.conf.spark.driver.memory=3g"])
    assert s.spark.conf == {"spark.sql.shuffle.partitions": "8", "spark.driver.memory": "3g"}


def test_compaction_settings_validated() -> None:
    s = load_settings(assignments=["compaction.loop_interval=2 minutes", "compaction.clustering=false"])
    assert s.compaction.loop_seconds == 120 and s.compaction.clustering is False
    with pytest.raises(ConfigError, match=r"compaction\.loop_interval"):
        load_settings(assignments=["compaction.loop_interval=often"])


def test_the_shipped_workstation_settings_file_loads_and_states_the_defaults() -> None:
    from loglake.settings import CatalogSettings, CompactionSettings, GdprSettings, IngestSettings

    shipped = load_settings(Path(__file__).resolve().parents[1] / "deploy" / "local" / "loglake.yaml")
    assert shipped.catalog == CatalogSettings()
    assert shipped.table.version is None
    assert shipped.compaction == CompactionSettings()
    assert shipped.gdpr == GdprSettings()
    assert shipped.ingest == IngestSettings()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("hoodie.bukcet.index.num.buckets=16", "did you mean hoodie.bucket.index.num.buckets?"),
        ("hoodie.bucket.index.num.buckets=-4", "must be at least 1"),
        ("hoodie.bucket.index.num.buckets=four", "expected an integer"),
        ("hoodie.metadata.enable=yes", "expected true or false"),
        ("kafka.options.maxOfsetsPerTrigger=5", "did you mean maxOffsetsPerTrigger?"),
        ("kafka.options.kafka.securty.protocol=SSL", "did you mean kafka.security.protocol?"),
    ],
)
def test_pass_through_typos_fail_at_start_naming_the_nearest_key(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(assignments=[assignment])


def test_known_pass_through_keys_are_accepted() -> None:
    s = load_settings(
        assignments=[
            "hoodie.bucket.index.num.buckets=16",
            "hoodie.write.lock.dynamodb.table=locks",  # hudi-aws, outside the bundle: accepted by prefix
            "kafka.options.maxOffsetsPerTrigger=5",
            "kafka.options.kafka.security.protocol=SSL",
            "kafka.options.failondataloss=false",  # Spark's source options are case-insensitive
        ]
    )
    assert s.hoodie["hoodie.bucket.index.num.buckets"] == "16"


def test_unknown_spark_keys_are_warned_about() -> None:
    from loglake.config_keys import spark_warnings

    warnings = spark_warnings({"spark.driver.memroy": "4g", "spark.driver.memory": "4g", "spark.master": "local[2]"})
    assert warnings == [
        "setting spark.driver.memroy: Spark does not know this key and will ignore it; "
        "did you mean spark.driver.memory?"
    ]


def test_a_key_given_twice_in_yaml_is_refused_with_both_lines(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kafka:\n  topic: a\n  bootstrap_servers: h:1\n  topic: b\n")
    with pytest.raises(ConfigError, match="key 'topic' is given twice, on lines 2 and 4"):
        load_settings(cfg)


@pytest.mark.integration
def test_known_keys_are_what_the_pinned_jars_declare() -> None:
    """The committed key lists match the jars: a Hudi or Spark upgrade without regenerating fails here."""
    from loglake import config_keys, jars

    committed = config_keys.known()
    fresh = config_keys.generate()
    assert committed["hudi_version"] == jars.HUDI_VERSION and committed["spark_version"] == jars.SPARK_VERSION
    for kind in ("hudi", "spark", "kafka"):
        assert fresh[kind] == committed[kind], f"{kind} keys changed: run python -m loglake.config_keys"
    assert "hoodie.bucket.index.num.buckets" in fresh["hudi"] and "spark.driver.memory" in fresh["spark"]


def test_schema_registry_settings_from_yaml_and_set(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "ingest:\n  schema_registry:\n    url: https://registry.example:8081/\n"
        "    options: {basic.auth.user.info: 'svc:s3cret', timeout: 5}\n"
    )
    import certifi

    s = load_settings(cfg, assignments=[f"ingest.schema_registry.options.ssl.ca.location={certifi.where()}"])
    registry = s.ingest.schema_registry
    assert registry.url == "https://registry.example:8081"
    assert registry.client_config() == {
        "url": "https://registry.example:8081",
        "basic.auth.user.info": "svc:s3cret",
        "timeout": 5,
        "ssl.ca.location": certifi.where(),
    }
    # The registry implies the Confluent header; the credentials never reach the start-up log.
    assert s.ingest.wire_header
    assert "s3cret" not in str(s.masked())


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        (
            "ingest.schema_registry.options.basic.auth.usr.info=svc:s3cret",
            "Unrecognized properties: basic.auth.usr.info",
        ),
        ("ingest.schema_registry.url=registry:8081", "'registry:8081' is not an http:// or https:// URL"),
        ("ingest.encoding=json", "needs ingest.encoding=avro, not json"),
        ("ingest.schema_registry.unavailable_timeout=forever", "'forever' is not a duration"),
        (
            "ingest.schema_registry.options.ssl.ca.location=/nonexistent/ca.pem",
            "cannot load ssl.ca.location=/nonexistent/ca.pem: No such file or directory",
        ),
    ],
)
def test_schema_registry_settings_are_checked_at_start(assignment: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(
            assignments=[
                "ingest.schema_registry.url=http://127.0.0.1:8081",
                "ingest.schema_registry.options.basic.auth.user.info=svc:s3cret",
                assignment,
            ]
        )
    assert words in str(err.value)
    assert "s3cret" not in str(err.value)


def test_catalog_settings_name_what_is_wrong() -> None:
    ok = load_settings(
        assignments=[
            "catalog.metastore_uris=thrift://hms-1:9083,thrift://hms-2:9083",
            "catalog.hive_conf.hive.metastore.client.socket.timeout=30s",
        ]
    )
    assert ok.catalog.active
    assert ok.catalog.hive_conf == {"hive.metastore.client.socket.timeout": "30s"}
    with pytest.raises(ConfigError, match=r"catalog.metastore_uris: 'http://hms:9083' is not a thrift://host:port"):
        load_settings(assignments=["catalog.metastore_uris=thrift://hms:9083,http://hms:9083"])
    with pytest.raises(ConfigError, match=r"catalog.database: 'logs-prod' is not a Hive name"):
        load_settings(assignments=["catalog.database=logs-prod"])
    with pytest.raises(ConfigError, match=r"keys \['spark.sql.x'\] are not Hive client settings"):
        load_settings(assignments=["catalog.hive_conf.spark.sql.x=1"])
    with pytest.raises(ConfigError, match=r"table.version"):
        load_settings(assignments=["table.version=7"])
