"""The single-node cluster (cluster/node) the tests of this directory run against: its kubeconfig, kubectl."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(os.environ.get("CRYPTOLAKE_CLUSTER_DIR", REPO / ".local" / "cluster"))
KUBECONFIG = CLUSTER_DIR / "kubeconfig"
CONTAINERD_SOCKET = CLUSTER_DIR / "containerd" / "containerd.sock"


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", str(KUBECONFIG), *args], input=stdin, text=True,
                          capture_output=True, check=check)


def get_json(*args: str) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)
