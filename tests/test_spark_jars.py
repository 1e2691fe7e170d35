"""The Maven pins must follow pyspark: a drifted jar fails at run time in ways that are hard to read."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pyspark

from cryptolake.settings import Settings
from cryptolake.spark_apps.session import local_jars

REPO = Path(__file__).resolve().parents[1]
POM = REPO / "spark_apps" / "pom.xml"
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def pom_property(name: str) -> str:
    return ET.parse(POM).getroot().find(f"m:properties/m:{name}", NS).text


def artifact(jar_name: str) -> str:
    return re.sub(r"-\d[\w.\-]*\.jar$", "", jar_name)


def pyspark_jars() -> list[str]:
    return [p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")]


def test_pins_match_the_installed_pyspark_and_delta():
    assert pom_property("spark.version") == pyspark.__version__
    assert pom_property("delta.version") == version("delta-spark")
    [hadoop] = [j for j in pyspark_jars() if j.startswith("hadoop-client-api-")]
    assert pom_property("hadoop.version") == hadoop.removeprefix("hadoop-client-api-").removesuffix(".jar")
    [scala] = [j for j in pyspark_jars() if j.startswith("scala-library-")]
    assert scala.removeprefix("scala-library-").startswith(pom_property("scala.binary.version") + ".")


def test_resolved_jars_bring_what_spark_lacks_and_shadow_nothing():
    names = [Path(j).name for j in local_jars(Settings.load())]
    for needed in ("delta-spark_2.13", "delta-storage", "hadoop-aws", "bundle", "postgresql"):
        assert needed in {artifact(n) for n in names}, needed
    shadowed = {artifact(n) for n in names} & {artifact(n) for n in pyspark_jars()}
    assert shadowed == set()


def test_make_jars_writes_the_list_where_the_settings_look(tmp_path, monkeypatch):
    """Outside a checkout (a wheel install) the list is found in the user cache `make jars` filled."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_CACHE_HOME", "CRYPTOLAKE_SPARK_CLASSPATH"):
        monkeypatch.delenv(name, raising=False)
    expected = Settings.load(env={}).spark_classpath
    assert expected == str(tmp_path / ".cache" / "cryptolake" / "spark-classpath.txt")
    plan = subprocess.run(["make", "-n", "jars"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert f"-Dmdep.outputFile={expected} " in plan
