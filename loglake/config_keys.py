"""Which pass-through keys Hudi, Spark and the Kafka source know, so a typo fails at start instead of silently.

``hoodie.bukcet.index.num.buckets=16`` is accepted by Hudi and ignored: the table gets 4 buckets and
nobody is told. The keys come from the libraries themselves, read once from the pinned jars by
:func:`generate` (a small Java program that collects every ``ConfigProperty`` of the Hudi bundle,
every registered Spark ``ConfigEntry`` and Kafka's consumer configs) into ``config_keys.json``,
committed beside this module; a test regenerates it from the jars and compares.

- ``hoodie.*``: an unknown key is an error naming the nearest known one; a value that does not parse
  as the type of the key's default (an integer, a boolean) is an error too.
- ``spark.*``: an unknown key is a warning (Spark takes many keys it registers lazily or by prefix).
- ``kafka.options``: an unknown Spark Kafka source option is an error; ``kafka.*`` client options
  are checked against Kafka's consumer configs.
"""

from __future__ import annotations

import difflib
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from loglake.errors import ConfigError

log = logging.getLogger(__name__)

DATA_FILE = "config_keys.json"

# Key prefixes whose keys are open-ended or come from jars outside the Hudi bundle (hudi-aws on EMR).
HOODIE_PREFIXES = ("hoodie.write.lock.dynamodb.", "hoodie.aws.", "hoodie.metrics.cloudwatch.")
SPARK_PREFIXES = (
    "spark.hadoop.",
    "spark.executorEnv.",
    "spark.sql.catalog.",
    "spark.yarn.",
    "spark.kubernetes.",
    "spark.history.",
    "spark.metrics.conf.",
    "spark.driver.resource.",
    "spark.executor.resource.",
    "spark.sql.hive.",
    "spark.emr.",
    "spark.ssl.",
    "spark.task.resource.",
    "spark.connect.",
)
# Keys Spark reads straight from its SparkConf, without registering a ConfigEntry.
SPARK_UNREGISTERED = frozenset(
    {
        "spark.master",
        "spark.app.name",
        "spark.default.parallelism",
        "spark.executor.uri",
        "spark.python.worker.memory",
        "spark.python.profile",
        "spark.python.profile.dump",
        "spark.python.profile.memory",
    }
)
# The Spark Kafka source's own options (structured-streaming-kafka-integration, Spark 3.5).
KAFKA_SOURCE_OPTIONS = (
    "assign",
    "subscribe",
    "subscribePattern",
    "startingOffsets",
    "endingOffsets",
    "startingOffsetsByTimestamp",
    "endingOffsetsByTimestamp",
    "startingTimestamp",
    "endingTimestamp",
    "startingOffsetsByTimestampStrategy",
    "failOnDataLoss",
    "kafkaConsumer.pollTimeoutMs",
    "fetchOffset.numRetries",
    "fetchOffset.retryIntervalMs",
    "maxOffsetsPerTrigger",
    "minOffsetsPerTrigger",
    "maxTriggerDelay",
    "minPartitions",
    "groupIdPrefix",
    "includeHeaders",
)
# Keys loglake itself depends on, with the range their value must be in.
POSITIVE_KEYS = ("hoodie.bucket.index.num.buckets", "hoodie.compact.inline.max.delta.commits")

_JAVA = r"""
import java.lang.reflect.*;
import java.util.*;
import java.util.jar.*;

public class ListConfigKeys {
  static Map<String, String> hudi = new TreeMap<>();

  static void record(Object value) throws Exception {
    Class<?> cp = Class.forName("org.apache.hudi.common.config.ConfigProperty");
    if (value == null || !cp.isInstance(value)) return;
    String key = (String) cp.getMethod("key").invoke(value);
    Object dflt = cp.getMethod("hasDefaultValue").invoke(value).equals(Boolean.TRUE)
        ? cp.getMethod("defaultValue").invoke(value) : null;
    String type = dflt == null ? "" : dflt.getClass().getSimpleName();
    hudi.put(key, type);
    Object alts = cp.getMethod("getAlternatives").invoke(value);
    for (Object alt : (List<?>) alts) hudi.putIfAbsent((String) alt, type);
  }

  public static void main(String[] args) throws Exception {
    ClassLoader loader = ListConfigKeys.class.getClassLoader();
    try (JarFile jar = new JarFile(args[0])) {
      for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements();) {
        String name = e.nextElement().getName();
        if (!name.startsWith("org/apache/hudi/") || !name.endsWith(".class")) continue;
        if (name.startsWith("org/apache/hudi/com/") || name.startsWith("org/apache/hudi/org/")) continue;
        String cls = name.substring(0, name.length() - 6).replace('/', '.');
        try {
          Class<?> c = Class.forName(cls, false, loader);
          Object module = null;
          try { module = c.getField("MODULE$").get(null); } catch (Throwable t) { }
          for (Field f : c.getDeclaredFields()) {
            if (!f.getType().getName().equals("org.apache.hudi.common.config.ConfigProperty")) continue;
            boolean isStatic = Modifier.isStatic(f.getModifiers());
            if (!isStatic && module == null) continue;
            f.setAccessible(true);
            record(f.get(isStatic ? null : module));
          }
        } catch (Throwable t) { }
      }
    }
    // Spark registers each ConfigEntry when its holder object initialises: touch them all.
    for (String holder : args[1].split(",")) {
      try (JarFile jar = new JarFile(holder)) {
        for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements();) {
          String name = e.nextElement().getName();
          if (!name.endsWith("$.class")) continue;
          boolean configs = name.startsWith("org/apache/spark/internal/config/")
              || name.startsWith("org/apache/spark/sql/internal/");
          if (!configs) continue;
          try { Class.forName(name.substring(0, name.length() - 6).replace('/', '.'), true, loader); }
          catch (Throwable t) { }
        }
      }
    }
    Class<?> entry = Class.forName("org.apache.spark.internal.config.ConfigEntry$");
    Object entries = entry.getField("MODULE$").get(null);
    Field known = entry.getDeclaredField("knownConfigs");
    known.setAccessible(true);
    Set<String> spark = new TreeSet<>(((Map<String, ?>) known.get(entries)).keySet());
    Set<String> kafka = new TreeSet<>();
    Class<?> consumer = Class.forName("org.apache.kafka.clients.consumer.ConsumerConfig");
    kafka.addAll((Set<String>) consumer.getMethod("configNames").invoke(null));
    StringBuilder out = new StringBuilder("{\"hudi\": {");
    String sep = "";
    for (Map.Entry<String, String> k : hudi.entrySet()) {
      out.append(sep).append('"').append(k.getKey()).append("\": \"").append(k.getValue()).append('"');
      sep = ", ";
    }
    out.append("}, \"spark\": [");
    sep = "";
    for (String k : spark) { out.append(sep).append('"').append(k).append('"'); sep = ", "; }
    out.append("], \"kafka\": [");
    sep = "";
    for (String k : kafka) { out.append(sep).append('"').append(k).append('"'); sep = ", "; }
    out.append("]}");
    System.out.println(out);
  }
}
"""


def generate() -> dict[str, Any]:
    """Read the known keys out of the pinned jars (javac and java from the JDK; a few seconds)."""
    from loglake import jars

    spark_jars = jars.resolve(jars.SPARK_JARS)
    bundle = next(p for p in spark_jars if p.name.startswith("hudi-spark"))
    import pyspark

    pyspark_jars = Path(pyspark.__file__).parent / "jars"
    holders = list(pyspark_jars.glob("spark-*.jar"))
    classpath = ":".join(str(p) for p in [bundle, *spark_jars, *sorted(pyspark_jars.glob("*.jar"))])
    javac, java = shutil.which("javac"), shutil.which("java")
    if not javac or not java:
        raise ConfigError("javac and java are needed to list the known configuration keys (install a JDK)")
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "ListConfigKeys.java"
        source.write_text(_JAVA)
        compiled = subprocess.run(
            [javac, "-nowarn", "-cp", classpath, "-d", work, str(source)], capture_output=True, text=True, check=False
        )
        if compiled.returncode:
            raise ConfigError(f"could not compile the key lister: {compiled.stderr[-2000:]}")
        done = subprocess.run(
            [java, "-cp", f"{work}:{classpath}", "ListConfigKeys", str(bundle), ",".join(str(h) for h in holders)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise ConfigError(f"the key lister failed: {done.stderr[-2000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("{"))
    data: dict[str, Any] = json.loads(line)
    return data


@cache
def known() -> dict[str, Any]:
    """The committed key lists (``config_keys.json``)."""
    text = resources.files("loglake").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _nearest(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def _parses_as(value: str, java_type: str) -> bool:
    try:
        if java_type in ("Integer", "Long"):
            int(value)
        elif java_type in ("Double", "Float"):
            float(value)
        elif java_type == "Boolean":
            return value.lower() in ("true", "false")
    except ValueError:
        return False
    return True


@cache
def _hudi_keys() -> dict[str, str]:
    """Hudi's ConfigProperty keys (with their default's type), and the Hudi options it registers as Spark SQL confs."""
    keys: dict[str, str] = {k: "" for k in known()["spark"] if k.startswith("hoodie.")}
    keys.update(known()["hudi"])
    return keys


def check_hoodie(options: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` for an unknown ``hoodie.*`` key or a value of the wrong type."""
    hudi = _hudi_keys()
    for key, value in options.items():
        if key.startswith(HOODIE_PREFIXES):
            continue
        if key not in hudi:
            version = known().get("hudi_version", "")
            raise ConfigError(f"setting {key}: not an option of Hudi {version}".rstrip() + _nearest(key, hudi))
        if not _parses_as(str(value), hudi[key]):
            expected = {"Boolean": "true or false", "Double": "a number", "Float": "a number"}.get(
                hudi[key], "an integer"
            )
            raise ConfigError(f"setting {key}={value!r}: expected {expected}")
        if key in POSITIVE_KEYS and int(value) < 1:
            raise ConfigError(f"setting {key}={value}: must be at least 1")


def spark_warnings(options: Mapping[str, str]) -> list[str]:
    """Warnings for ``spark.*`` keys Spark does not know (Spark ignores them silently)."""
    spark = set(known()["spark"])
    out = []
    for key in options:
        if key in spark or key in SPARK_UNREGISTERED or key.startswith(SPARK_PREFIXES):
            continue
        out.append(f"setting {key}: Spark does not know this key and will ignore it{_nearest(key, spark)}")
    return out


def check_kafka_options(options: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` for a Kafka source option or ``kafka.*`` client config that does not exist."""
    source = {k.lower(): k for k in KAFKA_SOURCE_OPTIONS}
    client = set(known()["kafka"])
    for key in options:
        if key.startswith("kafka."):
            if key[len("kafka.") :] not in client:
                raise ConfigError(
                    f"setting kafka.options.{key}: not a Kafka consumer config"
                    + _nearest(key[len("kafka.") :], client).replace("mean ", "mean kafka.")
                )
        elif key.lower() not in source:
            raise ConfigError(
                f"setting kafka.options.{key}: not an option of Spark's Kafka source" + _nearest(key, source.values())
            )


def main() -> None:
    """``python -m loglake.config_keys``: regenerate ``config_keys.json`` from the jars."""
    from loglake import jars

    data = generate()
    data["hudi_version"] = jars.HUDI_VERSION
    data["spark_version"] = jars.SPARK_VERSION
    target = Path(__file__).with_name(DATA_FILE)
    target.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    print(f"{target}: {len(data['hudi'])} hoodie keys, {len(data['spark'])} spark keys, {len(data['kafka'])} kafka")


if __name__ == "__main__":
    main()
