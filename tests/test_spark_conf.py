"""The Spark configuration loglake builds: jars, class path, and what the user's spark.* may change."""

from __future__ import annotations

import os

from loglake.settings import load_settings
from loglake.spark import session_conf


def test_hudi_bundle_is_on_the_jvm_class_path_and_user_entries_are_kept() -> None:
    conf = session_conf(load_settings(assignments=["spark.driver.extraClassPath=/opt/extra.jar"]))
    bundle = next(j for j in conf["spark.jars"].split(",") if "hudi-spark3.5-bundle" in j)
    assert conf["spark.driver.extraClassPath"] == f"{bundle}{os.pathsep}/opt/extra.jar"
    assert conf["spark.executor.extraClassPath"] == bundle
    assert "hadoop-aws" not in conf["spark.jars"]


def test_s3a_paths_bring_the_s3a_jars() -> None:
    conf = session_conf(load_settings(overrides={"table.path": "s3a://lake/tables/logs"}))
    names = [j.rsplit("/", 1)[-1] for j in conf["spark.jars"].split(",")]
    assert any(n.startswith("hadoop-aws-3.3.4") for n in names)
    assert any(n.startswith("aws-java-sdk-bundle") for n in names)
