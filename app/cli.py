"""The ``loglake`` console script: parse, build settings, run one job, return an exit code.

Errors are caught in one place (:func:`main`) and reported in one line naming the job and table;
tracebacks only for bugs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from loglake.errors import ConfigError, LoglakeError

log = logging.getLogger("loglake")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REJECTED = 3  # the run went through, but some erasure requests were rejected (see the report)
EXIT_UNVERIFIED = 4  # a purge was refused, or identifiers were still found after it


def _print_json(result: Any) -> None:
    payload = asdict(result) if is_dataclass(result) and not isinstance(result, type) else result
    print(json.dumps(payload, indent=2, sort_keys=True, default=str))


def _records_range(text: str) -> tuple[int, int]:
    """``7-25`` -> (7, 25); ``10`` -> (10, 10)."""
    try:
        lo, _, hi = text.partition("-")
        low, high = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--records-per-message {text!r}: expected N or MIN-MAX") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"--records-per-message {text!r}: need 0 <= MIN <= MAX")
    return low, high


# ---------------------------------------------------------------- handlers


def _cmd_setup(args: argparse.Namespace) -> int:
    from loglake import jars

    # The s3a jars (280 MB) too: tests write to an S3-compatible store, and containers start offline.
    for jar_set in (jars.SPARK_JARS, jars.KAFKA_JARS, jars.S3A_JARS):
        paths = jars.resolve(jar_set)
        print(f"{jar_set.name}: {len(paths)} jars in {paths[0].parent if paths else '-'}")
    return EXIT_OK


def _cmd_server_start(args: argparse.Namespace) -> int:
    server = importlib.import_module(f"devservers.{args.server_module}")
    print(server.start(port=args.port, data_dir=args.data))
    return EXIT_OK


def _cmd_server_stop(args: argparse.Namespace) -> int:
    server = importlib.import_module(f"devservers.{args.server_module}")
    print("stopped" if server.stop(data_dir=args.data) else f"no {args.server_what} running for that data folder")
    return EXIT_OK


def _cmd_produce(args: argparse.Namespace) -> int:
    from app.produce import produce
    from loglake.settings import load_settings
    from loglake.shape import load as load_shape

    settings = load_settings(
        args.config,
        overrides={"kafka.bootstrap_servers": args.bootstrap_servers, "kafka.topic": args.topic},
        assignments=args.set,
    )
    result = produce(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        topic=settings.kafka.topic,
        shape=load_shape(settings),
        messages=args.messages,
        seed=args.seed,
        records_per_message=args.records_per_message,
        encoding=args.encoding,
        confluent_wire_format=args.confluent_wire_format,
        schema_registry=args.schema_registry,
    )
    _print_json(result)
    return EXIT_OK


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.job import run
    from loglake.settings import load_settings

    settings = load_settings(
        args.config,
        overrides={
            "kafka.bootstrap_servers": args.bootstrap_servers,
            "kafka.topic": args.topic,
            "table.path": args.table_path,
            "ingest.checkpoint_dir": args.checkpoint_dir,
            "ingest.trigger": args.trigger,
            "metrics.port": args.metrics_port,
        },
        assignments=args.set,
    )
    result = run(settings, once=args.once)
    _print_json(result)
    return EXIT_OK


def _cmd_table_summary(args: argparse.Namespace) -> int:
    from ingest.summary import summarize
    from loglake.settings import load_settings

    settings = load_settings(args.config, overrides={"table.path": args.table_path}, assignments=args.set)
    _print_json(summarize(settings))
    return EXIT_OK


def _cmd_table_upgrade(args: argparse.Namespace) -> int:
    from loglake.settings import load_settings
    from loglake.spark import get_spark
    from loglake.upgrade import upgrade_tables

    settings = load_settings(args.config, overrides={"table.path": args.table_path}, assignments=args.set)
    spark = get_spark(settings, app_name=f"loglake-table-upgrade[{settings.table.name}]")
    result = upgrade_tables(spark, settings, args.to)
    _print_json({**asdict(result), "upgraded": result.upgraded})
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    result = run_demo(
        messages=args.messages,
        port=args.port,
        workdir=args.workdir,
        assignments=args.set,
        registry_port=args.registry_port if args.schema_registry else None,
    )
    _print_json(result)
    return EXIT_OK


def _gdpr_settings(args: argparse.Namespace) -> Any:
    from loglake.settings import load_settings

    return load_settings(
        args.config,
        overrides={
            "kafka.bootstrap_servers": args.bootstrap_servers,
            "kafka.topic": args.topic,
            "table.path": args.table_path,
            "metrics.pushgateway": args.pushgateway,
            "gdpr.requests_topic": getattr(args, "requests_topic", None),
        },
        assignments=args.set,
    )


def _cmd_gdpr_delete(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from gdpr import requests as erasure_requests
    from gdpr.job import run_delete
    from gdpr.metrics import GdprMetrics
    from gdpr.source import requests_from_topic
    from loglake.shape import load as load_shape

    settings = _gdpr_settings(args)
    topic = settings.gdpr.requests_topic
    if not args.requests and not topic and not args.command_is_purge:
        # A purge without requests finishes the erasures earlier deletes left pending; a delete needs some.
        raise ConfigError("give --requests FILE or --requests-topic TOPIC (setting gdpr.requests_topic)")
    shape = load_shape(settings)
    metrics = GdprMetrics()
    from_file = (
        erasure_requests.parse_file(args.requests, subject_columns=shape.subject_columns) if args.requests else None
    )
    source = (
        requests_from_topic(settings, topic, shape.subject_columns)
        if topic
        else nullcontext(erasure_requests.ParsedRequests([], []))
    )
    with source as from_topic:
        parsed = erasure_requests.ParsedRequests(
            (from_file.requests if from_file else []) + from_topic.requests,
            (from_file.rejections if from_file else []) + from_topic.rejections,
        )
        for rejection in parsed.rejections:
            log.warning("rejected erasure request at %s: %s", rejection.source, rejection.reason)
        for note in parsed.notes():
            log.warning("erasure request at %s: %s", note.source, note.reason)
        result = run_delete(
            settings, parsed, dry_run=args.dry_run, do_purge=args.purge or args.command_is_purge, shape=shape
        )
    _print_json(result)
    metrics.observe(result)
    code = EXIT_UNVERIFIED if result.verified is False else EXIT_REJECTED if result.rejected else EXIT_OK
    if settings.metrics.pushgateway and not args.dry_run:
        metrics.push(settings.metrics.pushgateway, job="loglake_gdpr", table_name=settings.table.name)
    return code


def _cmd_gdpr_expire(args: argparse.Namespace) -> int:
    from gdpr.expire import older_than_days, run_expire
    from gdpr.metrics import GdprMetrics

    settings = _gdpr_settings(args)
    result = run_expire(settings, older_than_days(args.older_than), dry_run=args.dry_run)
    _print_json(result)
    if settings.metrics.pushgateway and not args.dry_run:
        metrics = GdprMetrics()
        metrics.partitions_expired.set(len(result.partitions_dropped))
        metrics.duration.set(result.seconds)
        metrics.succeeded()
        metrics.push(settings.metrics.pushgateway, job="loglake_gdpr_expire", table_name=settings.table.name)
    return EXIT_OK


def _cmd_compact(args: argparse.Namespace) -> int:
    from compaction.job import CompactResult, run_compact
    from compaction.metrics import CompactionMetrics
    from loglake.settings import load_settings

    assignments = list(args.set)
    if args.loop:
        assignments.append(f"compaction.loop_interval={args.loop}")
    settings = load_settings(
        args.config,
        overrides={"table.path": args.table_path, "metrics.pushgateway": args.pushgateway},
        assignments=assignments,
    )
    metrics = CompactionMetrics()

    def after_round(result: CompactResult) -> None:
        metrics.update(result)
        if settings.metrics.pushgateway:
            metrics.push(settings.metrics.pushgateway, table_name=settings.table.name)
        if args.loop:
            print(json.dumps(result.as_dict()["rounds"][-1], sort_keys=True, default=str), flush=True)

    result = run_compact(
        settings,
        schedule=args.schedule,
        until_caught_up=args.until_caught_up,
        loop=bool(args.loop),
        on_round=after_round,
    )
    _print_json(result.as_dict())
    return EXIT_OK if result.caught_up or not args.until_caught_up else EXIT_FAILED


def _cmd_catalog_sync(args: argparse.Namespace) -> int:
    from loglake import catalog
    from loglake.settings import load_settings
    from loglake.spark import get_spark

    overrides: dict[str, Any] = {"table.path": args.table_path, "catalog.metastore_uris": args.metastore_uris}
    if args.metastore_uris:
        overrides["catalog.enabled"] = True
    settings = load_settings(args.config, overrides=overrides, assignments=args.set)
    spark = get_spark(settings, app_name=f"loglake-catalog-sync[{settings.table.name}]")
    results = catalog.sync_all(spark, settings, full=not args.incremental)
    _print_json([asdict(r) for r in results])
    return EXIT_OK


def _cmd_deploy_emr(args: argparse.Namespace) -> int:
    from deploy.emr import clusters as emr

    settings = emr.load(args.settings)
    kinds = (args.cluster,) if args.cluster else emr.KINDS
    if args.emr_command == "render":
        print(emr.render(settings, kinds))
        return EXIT_OK
    if not args.cluster:
        raise ConfigError("loglake deploy emr submit: give --cluster stream|gdpr|compaction")
    print(emr.submit(settings, args.cluster))
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _add_gdpr_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML settings file (the same file as ingest)")
    p.add_argument("--table-path", help="overrides table.path")
    p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers (retention report, request topic)")
    p.add_argument("--topic", help="overrides kafka.topic: the log topic whose retention the report states")
    p.add_argument("--pushgateway", help="host:port of a Prometheus Pushgateway (overrides metrics.pushgateway)")
    p.add_argument("--dry-run", action="store_true", help="report what would go, change nothing")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")


def _add_ingest_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML settings file (see deploy/local/loglake.yaml)")
    p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers")
    p.add_argument("--topic", help="overrides kafka.topic")
    p.add_argument("--table-path", help="overrides table.path")
    p.add_argument("--checkpoint-dir", help="overrides ingest.checkpoint_dir")
    p.add_argument("--trigger", help="overrides ingest.trigger, e.g. '5 minutes'")
    p.add_argument("--metrics-port", type=int, help="overrides metrics.port (0 turns the endpoint off)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting by dotted name, e.g. hoodie.parquet.max.file.size=134217728 or spark.driver.memory=4g",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loglake", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    # The order of these calls is the order of the commands in --help.
    _add_setup_command(sub)
    _add_server_commands(sub)
    _add_produce_command(sub)
    _add_ingest_command(sub)
    _add_demo_command(sub)
    _add_gdpr_commands(sub)
    _add_compact_command(sub)
    _add_catalog_commands(sub)
    _add_deploy_commands(sub)
    _add_table_commands(sub)
    return parser


def _add_setup_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "setup",
        help="resolve and cache the Spark/Hudi and Kafka jars from Maven Central "
        "(not the schema registry nor the Hive metastore: their first start fetches them, 158 MB and 27 MB)",
    )
    p.set_defaults(handler=_cmd_setup)


def _add_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_server_command(
        sub,
        "kafka",
        "a local single-node KRaft Kafka broker",
        port=9092,
        module="kafka_broker",
        what="broker",
        start_text="start a broker and print its bootstrap address",
        stop_text="stop the broker of a data folder",
    )
    _add_server_command(
        sub,
        "registry",
        "a local schema registry (Apicurio, Confluent-compatible API; needs Java 21+)",
        port=8081,
        module="registry_server",
        what="schema registry",
        start_text="start a schema registry and print its URL (the first start fetches it from Maven, 158 MB)",
        stop_text="stop the schema registry of a data folder",
    )
    _add_server_command(
        sub,
        "metastore",
        "a local Hive Metastore (thrift, Derby in the data folder; listens on every interface)",
        port=9083,
        module="metastore_server",
        what="Hive metastore",
        start_text="start a Hive metastore and print its thrift URI (the first start fetches it from Maven, 27 MB)",
        stop_text="stop the Hive metastore of a data folder",
    )


def _add_server_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text: str,
    *,
    port: int,
    module: str,
    what: str,
    start_text: str,
    stop_text: str,
) -> None:
    """``loglake <name> start|stop``: the local server of ``devservers.<module>`` (``what`` in messages),
    with its data under ``$LOGLAKE_HOME/<name>``."""
    server = sub.add_parser(name, help=text)
    ssub = server.add_subparsers(dest=f"{name}_command", required=True)
    p = ssub.add_parser("start", help=start_text)
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--data", type=Path, default=None, help=f"data folder (default $LOGLAKE_HOME/{name})")
    p.set_defaults(handler=_cmd_server_start, server_module=module, server_what=what)
    p = ssub.add_parser("stop", help=stop_text)
    p.add_argument("--data", type=Path, default=None)
    p.set_defaults(handler=_cmd_server_stop, server_module=module, server_what=what)


def _add_produce_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "produce",
        help="send synthetic log batches (realistic users, emails, IPs), or with --config messages of that "
        "file's log shape",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="YAML settings file (the same file as ingest): its broker, topic and log shape (log_schema)",
    )
    p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers")
    p.add_argument("--topic", help="overrides kafka.topic (default logs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--records-per-message", type=_records_range, default=(7, 25), metavar="MIN-MAX")
    p.add_argument("--encoding", choices=["avro", "json"], default="avro")
    p.add_argument("--confluent-wire-format", action="store_true", help="prefix Avro with the 5-byte header")
    p.add_argument(
        "--schema-registry",
        metavar="URL",
        help="register the messages' schema (LogBatch, or the --config file's log shape) under <topic>-value "
        "(BACKWARD) at this Confluent-compatible registry and put its id in each message's header (implies "
        "--confluent-wire-format)",
    )
    p.set_defaults(handler=_cmd_produce)


def _add_ingest_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ingest", help="run the streaming ingest job")
    _add_ingest_flags(p)
    p.add_argument("--once", action="store_true", help="process what is available now, then exit")
    p.set_defaults(handler=_cmd_ingest)


def _add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="local broker + synthetic load + ingest --once + summary, then clean up")
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--port", type=int, default=29092, help="port of the demo's own broker")
    p.add_argument("--workdir", type=Path, default=None, help="default $LOGLAKE_HOME/demo")
    p.add_argument(
        "--schema-registry",
        action="store_true",
        help="start a local schema registry too and produce three versions of the schema through it",
    )
    p.add_argument("--registry-port", type=int, default=28081, help="port of the demo's own schema registry")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=_cmd_demo)


def _add_gdpr_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gdpr = sub.add_parser("gdpr", help="erase data subjects, purge and verify; retention")
    gsub = gdpr.add_subparsers(dest="gdpr_command", required=True)
    for name, purge_only, text in (
        ("delete", False, "delete the subjects' records (add --purge to remove them physically and verify)"),
        (
            "purge",
            True,
            "delete, then compact, clean and verify every erasure still pending (requests optional)",
        ),
    ):
        p = gsub.add_parser(name, help=text)
        _add_gdpr_flags(p)
        p.add_argument(
            "--requests",
            type=Path,
            help="JSON lines or CSV: request_id and one of log_schema.subject_columns "
            "(default user_id, email, client_ip) or record_key",
        )
        p.add_argument("--requests-topic", help="read requests from this Kafka topic (overrides gdpr.requests_topic)")
        if not purge_only:
            p.add_argument("--purge", action="store_true", help="compact, clean and verify after deleting")
        p.set_defaults(handler=_cmd_gdpr_delete, command_is_purge=purge_only, purge=purge_only)
    p = gsub.add_parser("expire", help="drop event_date partitions older than a limit")
    _add_gdpr_flags(p)
    p.add_argument("--older-than", required=True, help="e.g. 30d")
    p.set_defaults(handler=_cmd_gdpr_expire)


def _add_compact_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compact", help="table services: execute compaction plans, cluster, clean, archive")
    p.add_argument("--config", type=Path, help="YAML settings file (the same file as ingest)")
    p.add_argument("--table-path", help="overrides table.path")
    p.add_argument("--pushgateway", help="host:port of a Prometheus Pushgateway (overrides metrics.pushgateway)")
    p.add_argument("--schedule", action="store_true", help="also plan a compaction of every log written so far")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--until-caught-up", action="store_true", help="repeat rounds until no plan is pending")
    mode.add_argument("--loop", metavar="INTERVAL", help="repeat rounds forever, e.g. '10 minutes'")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=_cmd_compact)


def _add_catalog_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cat = sub.add_parser("catalog", help="the tables in a Hive Metastore or AWS Glue, by name")
    csub = cat.add_subparsers(dest="catalog_command", required=True)
    p = csub.add_parser(
        "sync",
        help="register the log and quarantine tables and repair their partitions from the table "
        "(like MSCK REPAIR TABLE, from Hudi's timeline and file listing)",
    )
    p.add_argument("--config", type=Path, help="YAML settings file (the same file as ingest)")
    p.add_argument("--table-path", help="overrides table.path")
    p.add_argument("--metastore-uris", help="thrift://host:9083 (overrides catalog.metastore_uris)")
    p.add_argument(
        "--incremental",
        action="store_true",
        help="only what the timeline wrote since the last sync (the stream's own sync), not every partition",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=_cmd_catalog_sync)


def _add_deploy_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deploy = sub.add_parser("deploy", help="cluster definitions as code")
    dsub = deploy.add_subparsers(dest="deploy_command", required=True)
    emr_parser = dsub.add_parser(
        "emr", help="Amazon EMR: the stream cluster and the transient GDPR/compaction clusters"
    )
    esub = emr_parser.add_subparsers(dest="emr_command", required=True)
    for name, text in (
        ("render", "print the RunJobFlow requests as JSON"),
        ("submit", "send one RunJobFlow request with boto3"),
    ):
        p = esub.add_parser(name, help=text)
        p.add_argument("--settings", type=Path, default=Path("deploy/emr/emr.yaml"), help="EMR settings YAML")
        p.add_argument("--cluster", choices=["stream", "gdpr", "compaction"], help="one cluster (default: all)")
        p.set_defaults(handler=_cmd_deploy_emr)


def _add_table_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    table = sub.add_parser("table", help="inspect the log table, or move it to a newer table version")
    tsub = table.add_subparsers(dest="table_command", required=True)
    p = tsub.add_parser("summary", help="read the table back and print counts per partition")
    p.add_argument("--config", type=Path)
    p.add_argument("--table-path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=_cmd_table_summary)
    p = tsub.add_parser(
        "upgrade",
        help="move the log table, its quarantine and the erasure ledger to a newer Hudi table version, once "
        "(stop every writer first: the writers never upgrade a table themselves)",
    )
    p.add_argument("--config", type=Path)
    p.add_argument("--table-path")
    p.add_argument("--to", type=int, default=9, choices=[8, 9], help="table version to move to (default 9)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(handler=_cmd_table_upgrade)


def _from_the_jvm(exc: BaseException) -> bool:
    """Whether ``exc`` is Spark's or Py4J's (a failure in the JVM), not a Python bug of ours."""
    current: BaseException | None = exc
    while current is not None:
        if type(current).__module__.startswith(("py4j", "pyspark")):
            return True
        current = current.__cause__ or current.__context__
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # py4j logs every callback at INFO; our own INFO lines are the useful ones.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # A failing foreachBatch call is logged by Py4J's callback server as a full traceback, then comes
    # back through the stream as the failure this CLI states in one line; when the driver JVM died
    # mid-write the traceback even landed after that line. -v keeps it.
    logging.getLogger("py4j.clientserver").setLevel(logging.DEBUG if args.verbose else logging.CRITICAL)
    handler: Callable[[argparse.Namespace], int] = args.handler

    def last_line(text: str) -> None:
        # The failure line is the last thing the operator reads: other threads still talking to a dead
        # JVM (Py4J logs each failed send as a traceback on the root logger) stay quiet after it.
        if not args.verbose:
            logging.disable(logging.CRITICAL)
        print(f"loglake {args.command}: {text}", file=sys.stderr)

    try:
        return handler(args)
    except ConfigError as exc:
        last_line(f"configuration error: {exc}")
        return _exit(EXIT_USAGE)
    except LoglakeError as exc:
        last_line(f"error: {exc}")
        return _exit(int(getattr(exc, "exit_code", EXIT_FAILED)))
    except Exception as exc:
        if not _from_the_jvm(exc):
            raise  # a bug of ours: the traceback is the report
        # Spark and Hudi failures reach Python as Py4J/captured exceptions with pages of stack trace;
        # the operator gets the deepest error line (the whole trace with -v).
        from loglake.jvm_errors import chain_text, deepest_error

        log.debug("failure", exc_info=True)
        last_line(f"error: {deepest_error(chain_text(exc))}")
        return _exit(EXIT_FAILED)
    except KeyboardInterrupt:
        print(f"loglake {args.command}: interrupted", file=sys.stderr)
        return 130


def _exit(code: int) -> int:
    """``code``, after making sure the process ends: a driver JVM that died mid-callback leaves Py4J
    threads waiting on it forever, and a supervisor can only restart a process that exits."""
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
