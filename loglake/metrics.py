"""Prometheus plumbing shared by the jobs: a /metrics endpoint or a Pushgateway push."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server

from loglake.errors import ConfigError

log = logging.getLogger(__name__)


def serve(registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
    """Serve ``registry`` on ``http://host:port/metrics`` from a daemon thread (port 0: do nothing)."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"setting metrics.port={port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    log.info("metrics on http://%s:%d/metrics", host, port)


def push(registry: CollectorRegistry, gateway: str, job: str, grouping_key: Mapping[str, str]) -> None:
    """Push ``registry`` to a Pushgateway; a failed push is logged, never fatal to the job."""
    try:
        push_to_gateway(gateway, job=job, registry=registry, grouping_key=dict(grouping_key), timeout=10)
    except OSError as exc:
        log.warning("could not push metrics to metrics.pushgateway=%s: %s", gateway, exc)
