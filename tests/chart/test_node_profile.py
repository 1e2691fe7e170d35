"""The real-node profile (values-kind.yaml + values-node.yaml): the node has no registry and no dynamic volume
provisioner, so nothing may be pulled and every claim must name the class cluster/deploy.sh offers."""

from __future__ import annotations

import re

from tests.chart.objects import containers, pod_specs
from tests.chart.render import REPO


def test_no_container_of_the_release_pulls_an_image(renders):
    found = [(obj["metadata"]["name"], c["name"], c.get("imagePullPolicy"))
             for obj, spec in pod_specs(renders["node"]) for c in containers(spec)]
    assert found, "the node profile rendered no container"
    assert [f for f in found if f[2] != "Never"] == []


def test_every_volume_claim_names_the_class_the_deploy_script_offers(renders):
    claims = [t for obj in renders["node"] if obj["kind"] == "StatefulSet"
              for t in obj["spec"].get("volumeClaimTemplates", [])]
    classes = {t["spec"].get("storageClassName") for t in claims}
    assert claims and len(classes) == 1 and None not in classes
    script = (REPO / "cluster" / "deploy.sh").read_text()
    # the script reads the class from values-node.yaml and offers one volume per claim of the release
    offered = int(re.search(r"print\(classes\.pop\(\), (\d+)\)", script).group(1))
    assert offered == len(claims)
