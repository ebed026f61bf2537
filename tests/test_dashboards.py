"""Grafana dashboards and alert rules against a real Prometheus fed by real loglake runs.

A short ingest (its /metrics served from this process), a compaction and an erasure (both pushed to a
real Pushgateway) feed a real Prometheus (Debian's package, started here on 127.0.0.1). Then every
query of every panel must return at least one series, and every alert rule must evaluate cleanly.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from builders import encode, make_batches, send

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", GRAFANA / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every target of every committed dashboard."""
    out = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((board["uid"], panel["title"], target["expr"]))
    return out


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = _generator().render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == rendered, "run: python deploy/grafana/build_dashboards.py"
    assert len(_panel_queries()) >= 20


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - http://127.0.0.1 only
        return json.loads(r.read().decode())


@pytest.fixture
def prometheus(tmp_path: Path, pushgateway: str) -> Iterator[tuple[str, Path]]:
    """A real Prometheus scraping a port given later (file-based targets) and the Pushgateway; with our rules."""
    from conftest import free_port, serving

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `make system` (deploy/local/system-deps.sh)")
    targets = tmp_path / "ingest-targets.json"
    targets.write_text("[]")
    shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["alerts.yml"],
                "scrape_configs": [
                    {
                        "job_name": "loglake-ingest",
                        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                    },
                    {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [pushgateway]}]},
                ],
            }
        )
    )
    address = f"127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={address}",
    ]
    with serving(command, tmp_path / "prometheus.log", f"http://{address}/-/ready", "prometheus"):
        yield address, targets


@pytest.mark.integration
@pytest.mark.slow
def test_every_panel_query_returns_a_series_from_a_real_prometheus(
    spark: Any,
    kafka_bootstrap: str,
    topic_factory: Any,
    settings_factory: Any,
    pushgateway: str,
    prometheus: tuple[str, Path],
) -> None:
    from conftest import free_port

    from compaction.job import run_compact
    from compaction.metrics import CompactionMetrics
    from gdpr.job import run_delete
    from gdpr.metrics import GdprMetrics
    from gdpr.requests import parse_text
    from ingest.job import run
    from ingest.metrics import IngestMetrics

    address, targets = prometheus
    topic = topic_factory(partitions=2)
    batches = make_batches(40, seed=81, records=(5, 10))
    send(kafka_bootstrap, topic, [encode(b) for b in batches] + [b"not avro"])
    port = free_port()
    settings = settings_factory(
        topic,
        "kafka.max_offsets_per_trigger=15",
        "hoodie.compact.inline.max.delta.commits=1",
        metrics__port=port,
        metrics__pushgateway=pushgateway,  # Hudi's own metrics go there too
    )
    metrics = IngestMetrics()
    run(settings, once=True, metrics=metrics)  # the endpoint keeps serving from this process
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))

    compacted = run_compact(settings, until_caught_up=True, spark=spark)
    compaction_metrics = CompactionMetrics()
    compaction_metrics.update(compacted)
    compaction_metrics.push(pushgateway, table_name="dashboards")

    user = batches[0]["records"][0]["user_id"]
    erased = run_delete(settings, parse_text(json.dumps({"request_id": "d1", "user_id": user}), "r.jsonl"), spark=spark)
    gdpr_metrics = GdprMetrics()
    gdpr_metrics.observe(erased)
    gdpr_metrics.push(pushgateway, job="loglake_gdpr", table_name="dashboards")

    def query(expr: str) -> list[Any]:
        url = f"http://{address}/api/v1/query?query={urllib.parse.quote(expr)}"
        body = _get(url)
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    # Wait for several scrapes of both targets (rate() needs two samples in its window).
    deadline = time.monotonic() + 90
    pushed = 'loglake_compaction_pending_plans{table="dashboards"}'
    hudi = '{__name__=~".+_deltacommit_duration", job="loglake_hudi_ingest"}'
    while not (query('up{job="loglake-ingest"} == 1') and query(pushed) and query(hudi)):
        assert time.monotonic() < deadline, "prometheus never scraped the ingest endpoint, our pushes and Hudi's"
        time.sleep(1)
    time.sleep(5)

    empty = [(board, title, expr) for board, title, expr in _panel_queries() if not query(expr)]
    assert not empty, f"panels without data: {empty}"

    # The alert rules load and evaluate against the real series without error.
    groups = _get(f"http://{address}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    defined = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    expected = sorted(r["alert"] for g in defined["groups"] for r in g["rules"])
    assert sorted(r["name"] for r in rules) == expected
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
