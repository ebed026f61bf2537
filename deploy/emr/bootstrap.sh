#!/bin/bash
# EMR bootstrap action: install loglake and its settings on every node.
#   bootstrap.sh s3://bucket/dist/loglake-0.1.0-py3-none-any.whl s3://bucket/conf/loglake.yaml
set -euo pipefail
wheel="$1"
settings="$2"
tmp=$(mktemp -d)
aws s3 cp "$wheel" "$tmp/"
sudo python3.11 -m pip install --quiet "$tmp/$(basename "$wheel")"
sudo mkdir -p /etc/loglake
sudo aws s3 cp "$settings" /etc/loglake/loglake.yaml
# The spark-submit entry point the steps run (the same CLI as the console script).
cat > /home/hadoop/loglake_submit.py <<'PY'
import sys

from app.cli import main

sys.exit(main())
PY
