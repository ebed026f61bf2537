"""Amazon EMR clusters as code: the exact ``RunJobFlow`` requests for the stream and the transient jobs.

``loglake deploy emr render`` prints them, ``loglake deploy emr submit`` sends one with boto3. Three
clusters, as in the reference deployment:

- ``stream``: long-running; an on-demand master and core fleet, a Spot task fleet across several
  instance types, and the ingest step (restarted by hand or by automation when it stops).
- ``gdpr``: transient; runs ``loglake gdpr purge`` on the request topic, then terminates.
- ``compaction``: transient; runs ``loglake compact --schedule --until-caught-up``, then terminates.

Every cluster gets the same Hudi settings (the DynamoDB lock every writer must share), the same
bootstrap action (installs the package and the settings file) and steps through command-runner.jar.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from loglake import jars
from loglake.errors import ConfigError

ClusterKind = Literal["stream", "gdpr", "compaction"]
KINDS: tuple[ClusterKind, ...] = ("stream", "gdpr", "compaction")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Fleet(_Model):
    instance_types: list[str] = Field(min_length=1)
    on_demand: int = Field(default=0, ge=0)
    spot: int = Field(default=0, ge=0)


class EmrSettings(_Model):
    """``deploy/emr/emr.yaml``: where and how the clusters run."""

    name_prefix: str = "loglake"
    region: str = "eu-west-1"
    release_label: str = "emr-7.11.0"  # Spark 3.5.6, Java 17; loglake brings its own Hudi (spark_packages)
    log_uri: str
    subnet_ids: list[str] = Field(min_length=1)
    service_role: str = "EMR_DefaultRole"
    instance_profile: str = "EMR_EC2_DefaultRole"
    ec2_key_name: str | None = None
    bootstrap_script: str  # s3:// path of deploy/emr/bootstrap.sh
    wheel: str  # s3:// path of the loglake wheel
    settings_file: str  # s3:// path of the loglake.yaml the jobs read
    submit_script: str = "/home/hadoop/loglake_submit.py"
    lock_table: str = "loglake-locks"
    # loglake's Hudi, not the cluster's (EMR 7.11-7.13 ship 1.0.2 in /usr/lib/hudi, off Spark's class
    # path unless named): the Spark bundle, hudi-aws for the DynamoDB lock, Kafka and Avro.
    spark_packages: str = ",".join(
        (
            *jars.SPARK_JARS.coordinates,
            f"org.apache.hudi:hudi-aws-bundle:{jars.HUDI_VERSION}",
        )
    )
    master: Fleet = Fleet(instance_types=["m7g.xlarge", "m6g.xlarge"], on_demand=1)
    core: Fleet = Fleet(instance_types=["r7g.2xlarge", "r6g.2xlarge"], on_demand=2)
    task: Fleet = Fleet(instance_types=["r7g.2xlarge", "r6g.2xlarge", "r6gd.2xlarge", "m7g.4xlarge"], spot=8)
    transient_core: Fleet = Fleet(instance_types=["r7g.2xlarge", "r6g.2xlarge"], on_demand=1)
    transient_task: Fleet = Fleet(instance_types=["r7g.2xlarge", "r6g.2xlarge", "m7g.2xlarge"], spot=4)
    tags: dict[str, str] = Field(default_factory=lambda: {"app": "loglake"})
    # The Glue Data Catalog as the clusters' Hive metastore: the jobs' catalog sync (catalog.enabled
    # in the settings file) then registers the tables in Glue, where Athena reads them.
    glue_catalog: bool = True
    # Another account's Glue Data Catalog (its 12-digit id); unset: this account's.
    glue_catalog_id: str | None = Field(default=None, pattern=r"^\d{12}$")


def load(path: Path) -> EmrSettings:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"EMR settings {path}: {exc.strerror}") from None
    try:
        return EmrSettings.model_validate(data)
    except Exception as exc:
        raise ConfigError(f"EMR settings {path}: {exc}") from None


def _fleet(kind: str, name: str, fleet: Fleet) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "Name": name,
        "InstanceFleetType": kind,
        "TargetOnDemandCapacity": fleet.on_demand,
        "TargetSpotCapacity": fleet.spot,
        "InstanceTypeConfigs": [{"InstanceType": t, "WeightedCapacity": 1} for t in fleet.instance_types],
    }
    if fleet.spot:
        # Spot capacity from the deepest pools (all Graviton: one architecture per cluster); fall back
        # to on-demand rather than run short.
        spec["LaunchSpecifications"] = {
            "SpotSpecification": {
                "TimeoutDurationMinutes": 20,
                "TimeoutAction": "SWITCH_TO_ON_DEMAND",
                "AllocationStrategy": "price-capacity-optimized",
            }
        }
    return spec


GLUE_CLIENT_FACTORY = "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory"


def _glue(s: EmrSettings) -> list[dict[str, Any]]:
    """Spark's Hive client (and so Hudi's hms-mode sync, which runs inside Spark) talks to Glue."""
    if not s.glue_catalog:
        return []
    props = {"hive.metastore.client.factory.class": GLUE_CLIENT_FACTORY}
    if s.glue_catalog_id:
        props["hive.metastore.glue.catalogid"] = s.glue_catalog_id
    return [{"Classification": "spark-hive-site", "Properties": props}]


def _configurations(s: EmrSettings) -> list[dict[str, Any]]:
    return [
        *_glue(s),
        {
            "Classification": "spark-defaults",
            "Properties": {
                "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
                "spark.kryo.registrator": "org.apache.spark.HoodieSparkKryoRegistrar",
                "spark.sql.extensions": "org.apache.spark.sql.hudi.HoodieSparkSessionExtension",
                "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.hudi.catalog.HoodieCatalog",
                "spark.pyspark.python": "python3.11",
                "spark.jars.packages": s.spark_packages,
                "spark.dynamicAllocation.enabled": "true",
            },
        },
        {
            # Every writer (stream, GDPR, compaction) locks through one DynamoDB table.
            "Classification": "hudi-defaults",
            "Properties": {
                "hoodie.write.lock.provider": "org.apache.hudi.aws.transaction.lock.DynamoDBBasedLockProvider",
                "hoodie.write.lock.dynamodb.table": s.lock_table,
                "hoodie.write.lock.dynamodb.region": s.region,
                "hoodie.write.lock.dynamodb.billing_mode": "PAY_PER_REQUEST",
            },
        },
    ]


def _step(s: EmrSettings, name: str, args: list[str], on_failure: str) -> dict[str, Any]:
    return {
        "Name": name,
        "ActionOnFailure": on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["spark-submit", "--deploy-mode", "client", s.submit_script, *args],
        },
    }


STEPS: dict[ClusterKind, tuple[str, list[str]]] = {
    "stream": ("loglake ingest", ["ingest", "--config", "/etc/loglake/loglake.yaml"]),
    "gdpr": ("loglake gdpr purge", ["gdpr", "purge", "--config", "/etc/loglake/loglake.yaml"]),
    "compaction": (
        "loglake compact",
        ["compact", "--config", "/etc/loglake/loglake.yaml", "--schedule", "--until-caught-up"],
    ),
}


def run_job_flow(s: EmrSettings, kind: ClusterKind) -> dict[str, Any]:
    """The ``RunJobFlow`` request of one cluster."""
    if kind not in KINDS:
        raise ConfigError(f"cluster {kind!r}: expected one of {', '.join(KINDS)}")
    long_running = kind == "stream"
    core = s.core if long_running else s.transient_core
    task = s.task if long_running else s.transient_task
    instances: dict[str, Any] = {
        "InstanceFleets": [
            _fleet("MASTER", "master", s.master),
            _fleet("CORE", "core", core),
            _fleet("TASK", "task", task),
        ],
        "Ec2SubnetIds": s.subnet_ids,
        # A transient cluster ends with its last step; the stream cluster stays up.
        "KeepJobFlowAliveWhenNoSteps": long_running,
        "TerminationProtected": long_running,
    }
    if s.ec2_key_name:
        instances["Ec2KeyName"] = s.ec2_key_name
    step_name, args = STEPS[kind]
    request: dict[str, Any] = {
        "Name": f"{s.name_prefix}-{kind}",
        "LogUri": s.log_uri,
        "ReleaseLabel": s.release_label,
        "Applications": [{"Name": "Spark"}, {"Name": "Hadoop"}],
        "Instances": instances,
        "Configurations": _configurations(s),
        "BootstrapActions": [
            {
                "Name": "install loglake",
                "ScriptBootstrapAction": {"Path": s.bootstrap_script, "Args": [s.wheel, s.settings_file]},
            }
        ],
        "Steps": [_step(s, step_name, args, "CONTINUE" if long_running else "TERMINATE_CLUSTER")],
        "ServiceRole": s.service_role,
        "JobFlowRole": s.instance_profile,
        "VisibleToAllUsers": True,
        "Tags": [{"Key": k, "Value": v} for k, v in sorted({**s.tags, "loglake:cluster": kind}.items())],
    }
    if not long_running:
        # Belt and braces: a transient cluster whose step hangs still goes away.
        request["AutoTerminationPolicy"] = {"IdleTimeout": 3600}
    return request


def render(s: EmrSettings, kinds: tuple[ClusterKind, ...] = KINDS) -> str:
    return json.dumps({k: run_job_flow(s, k) for k in kinds}, indent=2)


def submit(s: EmrSettings, kind: ClusterKind) -> str:
    """Send the request with boto3 (credentials from the usual AWS chain); the new cluster's id."""
    try:
        import boto3
    except ImportError:
        raise ConfigError("loglake deploy emr submit needs boto3: pip install 'loglake[emr]'") from None
    client = boto3.client("emr", region_name=s.region)
    response = client.run_job_flow(**run_job_flow(s, kind))
    return str(response["JobFlowId"])
