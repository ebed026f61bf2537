"""The Trino that stands in for Athena: real java 24+, real Trino 476, a hudi catalog over the real metastore.

The session's server (conftest ``trino``) is fetched once (820 MB) and starts in about 20 s; the
Java check needs no server. What Trino reads of loglake's tables is tested in tests/test_catalog.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trino_server

from loglake.errors import SetupError

pytestmark = pytest.mark.integration


def test_trino_answers_and_has_the_hudi_catalog(trino: Any) -> None:
    assert trino.query("SELECT 1") == [(1,)]
    assert ("hudi",) in trino.query("SHOW CATALOGS")
    # Listing schemas goes through the metastore: the catalog reached it.
    assert ("default",) in trino.query("SHOW SCHEMAS FROM hudi")
    assert trino.url.startswith("http://127.0.0.1:")


def test_trino_refuses_a_java_older_than_24(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"21.0.5\" 2024-10-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("LOGLAKE_TRINO_JAVA", str(fake))
    with pytest.raises(SetupError, match=r"LOGLAKE_TRINO_JAVA=.* is Java 21; Trino needs Java 24 or newer"):
        trino_server.start(tmp_path / "trino", "thrift://127.0.0.1:9083")
