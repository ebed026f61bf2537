"""Fetch and build, in the background, what the collected tests' servers and containers need.

On a fresh machine the first test that needs Trino waited about 90 s for its 820 MB, the schema
registry and the metastore for theirs, and the compose stack about three minutes for its images
(debootstrap, Debian packages, pyspark, 450 MB of jars): mostly network time, during which a worker
held a core's worth of tests back. Started when collection ends, this runs beside the first tests.
It takes the same locks as the fixtures (``loglake.jars.resolve_archive``'s lock file, the image
build lock of ``docker_support``), so a fixture that gets there first, or later, waits for one
fetch instead of starting its own; what fails here is left for the fixture to fetch again and report.

    python tests/warmup.py [registry] [metastore] [trino] [images]
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import threading
import time

from loglake import jars

ARCHIVES = {
    "registry": (jars.APICURIO_REGISTRY, f"registry-{jars.APICURIO_VERSION}"),
    "metastore": (jars.HIVE_METASTORE, f"hive-metastore-{jars.HIVE_METASTORE_VERSION}"),
    "trino": (jars.TRINO_SERVER, f"trino-server-{jars.TRINO_VERSION}"),
}


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _archives(names: list[str]) -> None:
    # One after another, smallest first: they share one link, and the first is needed soonest.
    for name in names:
        started = time.monotonic()
        try:
            jars.resolve_archive(*ARCHIVES[name])
        except Exception as exc:  # the fixture fetches again and reports
            _say(f"{name}: {exc}")
            continue
        _say(f"{name}: ready in {time.monotonic() - started:.0f} s")


def _images() -> None:
    from docker_support import BUILD_IMAGES, BUILD_LOCK, engine_problem

    problem = engine_problem()
    if problem is not None:
        _say(f"images: not built, {problem}")
        return
    started = time.monotonic()
    with BUILD_LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.run([str(BUILD_IMAGES)], capture_output=True, text=True, check=False)
    _say(f"images: exit {proc.returncode} in {time.monotonic() - started:.0f} s\n{proc.stdout}{proc.stderr[-3000:]}")


def main(wanted: list[str]) -> None:
    threads = [threading.Thread(target=_archives, args=([n for n in ARCHIVES if n in wanted],))]
    if "images" in wanted:
        threads.append(threading.Thread(target=_images))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1:])
