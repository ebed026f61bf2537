"""Move loglake's tables to another Hudi table version, once, with every writer stopped.

The writers never upgrade a table on the way (``hoodie.write.auto.upgrade`` is off, see
:func:`loglake.table.version_options`): a stream that upgraded the table on its first commit would
leave a GDPR or compaction job of the old configuration failing on it, and a version-6 table would
leave its Athena readers behind. The move is this explicit step instead, through Hudi's own
``upgrade_table`` procedure, for the log table, its quarantine and the erasure ledger together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from loglake import services, table
from loglake.errors import ConfigError
from loglake.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class UpgradeResult:
    """What ``loglake table upgrade`` did, table by table (path -> version)."""

    to_version: int
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    @property
    def upgraded(self) -> list[str]:
        return [p for p, v in self.after.items() if v != self.before.get(p)]


def upgrade_tables(spark: SparkSession, settings: Settings, to_version: int = table.CURRENT_VERSION) -> UpgradeResult:
    """Upgrade the log table, its quarantine and the ledger to ``to_version``; tables already there
    (or not yet created) are left alone. A pinned ``table.version`` of another version is refused: the
    writers would refuse the upgraded tables at their next start."""
    if to_version not in table.VERSION_NAMES:
        raise ConfigError(f"--to {to_version}: Hudi writes table versions {', '.join(map(str, table.VERSION_NAMES))}")
    pinned = settings.table.version
    if pinned is not None and pinned != to_version:
        raise ConfigError(
            f"setting table.version={pinned} pins the writers to version {pinned}: unset it, or set it to "
            f"{to_version}, before upgrading to {to_version}"
        )
    path = settings.table.require_path()
    paths = [path, settings.table.effective_quarantine_path, settings.ledger_path]
    result = UpgradeResult(to_version=to_version)
    for p in paths:
        have = table.table_version(spark, p)
        if have is None:
            continue
        if have > to_version and p == settings.ledger_path:
            continue  # the ledger is loglake's own: Hudi's writer may have upgraded it on a write
        result.before[p] = have
        if have > to_version:
            raise ConfigError(
                f"the table at {p} is version {have}, newer than --to {to_version}; Hudi's CALL downgrade_table"
                f"(table => '<name>', to_version => '{table.VERSION_NAMES[to_version]}') moves it down"
            )
    if path not in result.before:
        raise ConfigError(
            f"table.path={path} is not a Hudi table (no .hoodie/hoodie.properties there); nothing upgraded"
        )
    for p, have in result.before.items():
        if have < to_version:
            name = services.register(spark, p, "loglake_upgrade")
            args = services.args_text({"table": name, "to_version": table.VERSION_NAMES[to_version]})
            services.call(
                spark,
                settings,
                f"CALL upgrade_table({args})",
                what=f"upgrade of {p}",
                opts=table.lock_options(settings),
            )
            # The metadata table keeps files of the old Hudi, whose records lack fields the new one
            # writes beside them; hudi-rs 0.5 then fails on every read. Rebuilt now, by the new Hudi, it
            # holds one schema.
            for procedure in ("delete_metadata_table", "create_metadata_table"):
                services.call(
                    spark,
                    settings,
                    f"CALL {procedure}(table => '{name}')",
                    what=f"{procedure} of {p}",
                    opts=table.lock_options(settings),
                )
            log.info("upgraded %s from table version %d to %d", p, have, to_version)
        after = table.table_version(spark, p)
        assert after is not None
        result.after[p] = after
        if after != to_version:
            raise ConfigError(f"the table at {p} is still version {after} after Hudi's upgrade_table to {to_version}")
    return result
