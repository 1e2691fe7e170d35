"""The single-node cluster of `make cluster-up` (cluster/node/node.py).

The `cluster` tests need that node running. They never start it (one node per machine, and other work uses it):
when it is not up they FAIL and say how to start it. The configuration tests need no node.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE_PY = REPO / "cluster" / "node" / "node.py"


@pytest.fixture(scope="session")
def node_module():
    """cluster/node/node.py, a script outside the package, loaded by path."""
    spec = importlib.util.spec_from_file_location("cryptolake_cluster_node", NODE_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@dataclass
class Node:
    module: object
    paths: object
    bins: Path

    def kubectl(self, *argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        done = self.module.kubectl(self.paths, self.bins, *argv, check=False, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(argv)} failed: {done.stderr.strip()}")
        return done


@pytest.fixture(scope="session")
def node(node_module) -> Node:
    paths = node_module.Paths(node_module.state_dir())
    bins = Path(node_module.build_output("kube-bin")[0])
    stopped = [name for name in node_module.ORDER if node_module.running_pid(paths, name) is None]
    if stopped or not node_module.node_ready(paths, bins) or not node_module.coredns_ready(paths, bins):
        pytest.fail(f"the single-node cluster is not up (state {paths.root}; not running: "
                    f"{', '.join(stopped) or 'none, but the node or CoreDNS is not Ready'}): start it with "
                    "`make cluster-up` as root (CRYPTOLAKE_CLUSTER_DIR names another state directory); "
                    "`make cluster-status` shows each component", pytrace=False)
    return Node(node_module, paths, bins)
