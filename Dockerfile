# The loglake image: Python 3.11, a Java 17 runtime, the package, and the Spark/Hudi/Kafka jars baked in
# (resolved once at build time from Maven Central, so containers start offline).
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven \
    && rm -rf /var/lib/apt/lists/*

ENV LOGLAKE_HOME=/opt/loglake \
    PYTHONUNBUFFERED=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY loglake loglake
COPY ingest ingest
COPY gdpr gdpr
COPY compaction compaction
RUN pip install --no-cache-dir . \
    && loglake setup \
    && useradd --create-home --uid 1000 loglake \
    && chown -R loglake /opt/loglake

USER loglake
WORKDIR /home/loglake
ENTRYPOINT ["loglake"]
CMD ["--help"]
