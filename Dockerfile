# The loglake image: Python 3.11, a Java 17 runtime, the package, and the Spark/Hudi/Kafka jars baked in
# (resolved once at build time from Maven Central, so containers start offline).
#
# BASE is any Debian bookworm image: the public python:3.11-slim-bookworm by default, or a local
# one where no registry is reachable (debootstrap --variant=minbase bookworm, then docker import),
# whose python3 is bookworm's own 3.11.
ARG BASE=python:3.11-slim-bookworm

# Stage "java": the base with a Java 17 runtime and the extra certificates. The local Kafka image
# builds on it too (deploy/compose/local/build-images.sh, --target java).
FROM ${BASE} AS java
# PEM certificates to trust besides the system's, for builds behind a TLS-inspecting proxy
# (--build-arg EXTRA_CA_CERTS="$(cat proxy-ca.crt)"). One file per certificate, added before Java
# is installed: Java's trust store (which Maven uses) takes the first certificate of each file only.
# pip is pointed at the system bundle below.
ARG EXTRA_CA_CERTS=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && if [ -n "$EXTRA_CA_CERTS" ]; then \
         printf '%s\n' "$EXTRA_CA_CERTS" \
           | awk '/BEGIN CERTIFICATE/ {n++} n {print > ("/usr/local/share/ca-certificates/extra-" n ".crt")}' \
         && update-ca-certificates; \
       fi \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

FROM java
# Bookworm's python3 only where the base has no Python 3.11 of its own; a venv either way, so pip
# never writes into a Python the system manages.
RUN apt-get update \
    && apt-get install -y --no-install-recommends maven \
    && if ! command -v python3.11 >/dev/null; then \
         apt-get install -y --no-install-recommends python3.11 python3.11-venv; \
       fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv

ENV LOGLAKE_HOME=/opt/loglake \
    PATH=/opt/venv/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONUNBUFFERED=1
WORKDIR /src
# Layers from the least to the most often changed: an edit of the code rebuilds in seconds, keeping
# the dependencies (pyspark alone is 300 MB) and the jars (Maven, 450 MB) from the layers before.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
# The jar lists and their resolver only (standard library and pyspark): the same folders `loglake
# setup` fills. Maven's own repository (~/.m2) is a second copy of every jar and goes.
COPY loglake/__init__.py loglake/errors.py loglake/jars.py /tmp/jars/loglake/
RUN PYTHONPATH=/tmp/jars python -c "from loglake import jars; [jars.resolve(s) for s in (jars.SPARK_JARS, jars.KAFKA_JARS, jars.S3A_JARS)]" \
    && rm -rf /tmp/jars /root/.m2
COPY README.md ./
COPY loglake loglake
COPY ingest ingest
COPY gdpr gdpr
COPY compaction compaction
COPY app app
COPY devservers devservers
COPY deploy/__init__.py deploy/__init__.py
COPY deploy/emr deploy/emr
RUN pip install --no-cache-dir --no-deps . \
    && loglake setup \
    && useradd --create-home --uid 1000 loglake \
    && chown loglake /opt/loglake /opt/loglake/jars \
    && mkdir /locks && chown loglake /locks
# The jobs do not run as root. They may add folders to the loglake home (a jar set fetched on first
# use) but need not own the jars baked in: a recursive chown would copy all 450 MB into a new layer.
# /locks: where docker-compose.yml mounts the writers' shared lock folder (a named volume takes this
# folder's owner when first mounted, so the jobs can create lock files).

USER loglake
WORKDIR /home/loglake
ENTRYPOINT ["loglake"]
CMD ["--help"]
