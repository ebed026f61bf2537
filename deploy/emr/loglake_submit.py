"""spark-submit entry point: the same CLI (and code path) as the ``loglake`` console script.

    spark-submit [spark options] loglake_submit.py ingest --config /etc/loglake/loglake.yaml

Under spark-submit the session is the one spark-submit configured (master, jars, memory); loglake
applies only the settings file's spark.* runtime options on top.
"""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
