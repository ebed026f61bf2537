"""The rendered EMR requests, validated offline against botocore's EMR service model.

botocore's ParamValidator checks names, types, required members and ranges, but not enum values;
those are checked here by walking the same model, so a misspelt field or value fails in CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.model import Shape
from botocore.session import get_session
from botocore.validate import ParamValidator

from deploy.emr import clusters as emr
from loglake import jars
from loglake.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = ROOT / "deploy" / "emr" / "emr.yaml"
SETTINGS = emr.load(SETTINGS_FILE)
RUN_JOB_FLOW = get_session().get_service_model("emr").operation_model("RunJobFlow").input_shape


def enum_errors(value: Any, shape: Shape, where: str = "") -> list[str]:
    if shape.type_name == "structure":
        members = shape.members  # type: ignore[attr-defined]
        return [e for k, v in value.items() if k in members for e in enum_errors(v, members[k], f"{where}.{k}")]
    if shape.type_name == "list":
        return [e for i, v in enumerate(value) for e in enum_errors(v, shape.member, f"{where}[{i}]")]  # type: ignore[attr-defined]
    if shape.type_name == "map":
        return [e for k, v in value.items() for e in enum_errors(v, shape.value, f"{where}[{k}]")]  # type: ignore[attr-defined]
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        return [f"{where}: {value!r} not in {shape.enum}"]
    return []


@pytest.mark.parametrize("kind", emr.KINDS)
def test_every_cluster_request_is_valid_for_the_emr_api(kind: emr.ClusterKind) -> None:
    request = emr.run_job_flow(SETTINGS, kind)
    report = ParamValidator().validate(request, RUN_JOB_FLOW)
    assert not report.has_errors(), report.generate_report()
    assert enum_errors(request, RUN_JOB_FLOW) == []


def test_the_enum_check_can_fail() -> None:
    request = emr.run_job_flow(SETTINGS, "gdpr")
    request["Instances"]["InstanceFleets"][0]["InstanceFleetType"] = "LEADER"
    assert enum_errors(request, RUN_JOB_FLOW) == [
        ".Instances.InstanceFleets[0].InstanceFleetType: 'LEADER' not in ['MASTER', 'CORE', 'TASK']"
    ]
    request["Instances"]["InstanceFleet"] = request["Instances"].pop("InstanceFleets")
    assert ParamValidator().validate(request, RUN_JOB_FLOW).has_errors()


def test_stream_stays_up_and_transient_clusters_end_with_their_step() -> None:
    stream = emr.run_job_flow(SETTINGS, "stream")
    assert stream["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    fleets = {f["InstanceFleetType"]: f for f in stream["Instances"]["InstanceFleets"]}
    assert fleets["CORE"]["TargetOnDemandCapacity"] > 0 and fleets["CORE"]["TargetSpotCapacity"] == 0
    assert fleets["TASK"]["TargetSpotCapacity"] > 0 and len(fleets["TASK"]["InstanceTypeConfigs"]) >= 3
    assert stream["Steps"][0]["HadoopJarStep"]["Args"][-3:] == ["ingest", "--config", "/etc/loglake/loglake.yaml"]
    for kind, command in (("gdpr", ["gdpr", "purge"]), ("compaction", ["compact"])):
        request = emr.run_job_flow(SETTINGS, kind)
        assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
        assert request["Steps"][0]["ActionOnFailure"] == "TERMINATE_CLUSTER"
        args = request["Steps"][0]["HadoopJarStep"]["Args"]
        assert args[0] == "spark-submit" and args[4 : 4 + len(command)] == command
    hudi = next(c for c in stream["Configurations"] if c["Classification"] == "hudi-defaults")["Properties"]
    assert hudi["hoodie.write.lock.provider"].endswith("DynamoDBBasedLockProvider")
    # loglake's own Hudi (and the hudi-aws bundle that holds that lock provider), never EMR's 1.0.2.
    spark = next(c for c in stream["Configurations"] if c["Classification"] == "spark-defaults")["Properties"]
    packages = spark["spark.jars.packages"].split(",")
    assert f"org.apache.hudi:hudi-spark3.5-bundle_2.12:{jars.HUDI_VERSION}" in packages
    assert f"org.apache.hudi:hudi-aws-bundle:{jars.HUDI_VERSION}" in packages
    assert "/usr/lib/hudi" not in json.dumps(stream)


def test_render_prints_the_requests() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "deploy", "emr", "render", "--settings", str(SETTINGS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rendered = json.loads(out.stdout)
    assert set(rendered) == set(emr.KINDS)
    assert rendered["compaction"] == emr.run_job_flow(SETTINGS, "compaction")


def test_every_cluster_uses_the_glue_catalog_for_the_catalog_sync() -> None:
    """Spark's Hive client, and with it Hudi's hms-mode sync, reaches Glue through EMR's client factory."""
    for kind in emr.KINDS:
        request = emr.run_job_flow(SETTINGS, kind)
        hive = next(c for c in request["Configurations"] if c["Classification"] == "spark-hive-site")
        assert hive["Properties"] == {"hive.metastore.client.factory.class": emr.GLUE_CLIENT_FACTORY}
    other = SETTINGS.model_copy(update={"glue_catalog_id": "123456789012"})
    hive = next(
        c for c in emr.run_job_flow(other, "gdpr")["Configurations"] if c["Classification"] == "spark-hive-site"
    )
    assert hive["Properties"]["hive.metastore.glue.catalogid"] == "123456789012"
    off = SETTINGS.model_copy(update={"glue_catalog": False})
    assert all(c["Classification"] != "spark-hive-site" for c in emr.run_job_flow(off, "stream")["Configurations"])


def test_a_glue_catalog_id_must_be_an_account_id(tmp_path: Path) -> None:
    bad = tmp_path / "emr.yaml"
    bad.write_text(SETTINGS_FILE.read_text() + "glue_catalog_id: acct-1\n")
    with pytest.raises(ConfigError, match="glue_catalog_id"):
        emr.load(bad)
