#!/usr/bin/env bash
# Installs the Debian packages loglake needs when they are missing: a Java 17 runtime (Spark, Kafka),
# Maven (one-time jar resolution), Prometheus, its Pushgateway and promtool (metrics tests), a compose
# client, and a Docker engine with debootstrap (the container tests).
# Python 3.11 itself is expected on the machine.
set -euo pipefail
need=()
java_major() { java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]}'; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null || need+=(maven)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need+=(prometheus-pushgateway)
# A compose client validates docker-compose.yml in the tests (no engine needed) and runs the stack.
if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then need+=(docker-compose); fi
# The container tests: a Docker engine (unless one already answers), and debootstrap for the Debian
# base image the local images are built on (no image registry is assumed).
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then need+=(docker.io); fi
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "missing: ${need[*]}; install them (Debian/Ubuntu: apt-get install ${need[*]})" >&2
  exit 1
fi
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
echo "installing ${need[*]}"
$SUDO apt-get update -qq
# The Prometheus packages would start system-wide daemons on :9090/:9091; loglake's tests start their
# own on free ports, so forbid service starts for the duration of the install.
policy=/usr/sbin/policy-rc.d
added_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  added_policy=true
fi
cleanup() { if [ "$added_policy" = true ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
