"""Tables written by loglake on Hudi 1.0.2, taken over by the current Hudi without a manual step.

``data/legacy/legacy-tables.tar.xz`` holds what the Hudi 1.0.2 release of loglake left (see
``data/legacy/make_legacy_tables.py``, which built it with that release's code and jars): a version-8
and a version-6 table, each with base and log files, a compaction plan the stream scheduled and
nobody executed, a quarantined message, and a GDPR delete that was not purged yet. The current
writer must read, extend, erase and compact them at their own version, and the independent reader
(hudi-rs) must see every record once throughout; ``loglake table upgrade`` then moves one to 9.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from builders import encode, expected_rows, make_batches, normalize, read_hudi_rs, send

from ingest.job import run
from loglake import table
from loglake.errors import ConfigError
from loglake.upgrade import upgrade_tables

pytestmark = pytest.mark.integration

ARCHIVE = Path(__file__).parent / "data" / "legacy" / "legacy-tables.tar.xz"


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("legacy")
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(root, filter="data")
    manifest = json.loads((root / "legacy" / "manifest.json").read_text())
    assert manifest["hudi_version"] == "1.0.2"
    return root / "legacy", manifest


def _version(path: Path) -> str:
    props = (path / ".hoodie" / "hoodie.properties").read_text()
    return next(line.split("=", 1)[1] for line in props.splitlines() if line.startswith("hoodie.table.version="))


def _held(path: Path) -> dict[str, dict[str, Any]]:
    rows = read_hudi_rs(str(path)).to_pylist()
    keys = [r["_hoodie_record_key"] for r in rows]
    assert len(keys) == len(set(keys)), "a record is held twice"
    return {r["record_key"]: normalize(r) for r in rows}


def _ingest(settings_factory: Any, topic_factory: Any, kafka_bootstrap: str, seed: int, *assignments: str) -> Any:
    topic = topic_factory(partitions=1)
    batches = make_batches(15, seed=seed, records=(5, 12))
    send(kafka_bootstrap, topic, [encode(b) for b in batches])
    settings = settings_factory(topic, *assignments)
    result = run(settings, once=True)
    assert result.rows_quarantined == 0
    return settings, expected_rows(batches)


def _spark_rows(spark: Any, path: Path) -> dict[str, dict[str, Any]]:
    rows = [r.asDict(recursive=True) for r in spark.read.format("hudi").load(str(path)).collect()]
    keys = [r["_hoodie_record_key"] for r in rows]
    assert len(keys) == len(set(keys)), "a record is held twice"
    return {r["record_key"]: normalize(r) for r in rows}


def test_a_version_8_table_of_hudi_1_0_2_is_refused_then_upgraded_once_and_written_at_9(
    spark: Any,
    legacy: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_factory: Any,
    settings_factory: Any,
) -> None:
    root, manifest = legacy
    entry = next(t for t in manifest["tables"] if t["version"] == 8)
    shutil.copytree(root / "v8", tmp_path, dirs_exist_ok=True)
    path, quarantine = tmp_path / "logs", tmp_path / "logs_quarantine"
    expected: dict[str, dict[str, Any]] = entry["rows"]
    salt = f"gdpr.ledger_salt={manifest['salt']}"
    # As the old writer left it (base and log files, a compaction plan pending): every record once.
    assert _spark_rows(spark, path) == expected
    assert _held(path) == expected

    # Hudi 1.2's writes would leave a version-8 table unreadable to hudi-rs 0.5: the stream refuses to
    # start, in one line that names the step, and the step is a loglake command, run once.
    with pytest.raises(ConfigError, match=r"is version 8 .* run `loglake table upgrade` once"):
        run(settings_factory(topic_factory(partitions=1), salt), once=True)
    assert _version(path) == "8"
    upgraded = upgrade_tables(spark, settings_factory("unused", salt))
    assert set(upgraded.upgraded) >= {str(path), str(quarantine)}
    assert upgrade_tables(spark, settings_factory("unused", salt)).upgraded == []
    assert _held(path) == expected

    # Written at 9 from then on, with nothing configured about versions; both readers see every record once.
    _, added = _ingest(settings_factory, topic_factory, kafka_bootstrap, 98, salt)
    assert _version(path) == _version(quarantine) == "9"
    assert _held(path) == _spark_rows(spark, path) == {**expected, **added}
    # The metadata table the upgrade rebuilt indexes again what it indexed before.
    props = (path / ".hoodie" / "hoodie.properties").read_text()
    partitions = next(line for line in props.splitlines() if line.startswith("hoodie.table.metadata.partitions="))
    assert {"files", "column_stats"} <= set(partitions.split("=", 1)[1].split(","))


def test_a_pin_refuses_a_table_of_another_version_and_the_upgrade_with_it(
    spark: Any, legacy: tuple[Path, dict[str, Any]], tmp_path: Path, settings_factory: Any
) -> None:
    root, _ = legacy
    shutil.copytree(root / "v8", tmp_path, dirs_exist_ok=True)
    path = str(tmp_path / "logs")
    with pytest.raises(
        ConfigError, match=r"setting table.version=9: the table at .* is version 8; set table.version=8, or"
    ):
        table.resolve_version(spark, settings_factory("unused", "table.version=9"), path)
    with pytest.raises(ConfigError, match=r"setting table.version=8 pins the writers to version 8"):
        upgrade_tables(spark, settings_factory("unused", "table.version=8"), 9)
    # Pinned to 8, the writers keep writing 8 (for Hudi 1.0.2 readers and writers elsewhere).
    pinned = table.resolve_version(spark, settings_factory("unused", "table.version=8"), path)
    assert table.version_options(pinned) == {"hoodie.write.table.version": "8", "hoodie.write.auto.upgrade": "false"}
    assert _version(tmp_path / "logs") == "8"
