"""Layers and single definitions (DESIGN.md): the core imports neither services nor spark apps nor the
application on top of it, nothing in services imports Spark, and the group names are written down once."""

from __future__ import annotations

import ast
from pathlib import Path

from cryptolake.groups import GROUPS

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"cryptolake": REPO / "cryptolake", "cryptolake.services": REPO / "services",
         "cryptolake.spark_apps": REPO / "spark_apps"}
CORE = {"cryptolake.settings", "cryptolake.logs", "cryptolake.lake", "cryptolake.ledger", "cryptolake.errors",
        "cryptolake.groups", "cryptolake.pipeline"}


def sources(root: Path) -> list[Path]:
    found = sorted(root.rglob("*.py"))
    assert found, f"no Python source under {root}"
    return found


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (lazy imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def test_the_core_imports_only_the_core():
    for module in CORE:
        path = REPO / (module.replace(".", "/") + ".py")
        ours = {m for m in imported_modules(path) if m.startswith("cryptolake.")}
        # `from cryptolake.lake import Lake` also yields `cryptolake.lake.Lake`: judge by the module part
        outside = {m for m in ours if not any(m == c or m.startswith(c + ".") for c in CORE)}
        assert outside == set(), f"{module} reaches above the core: {sorted(outside)}"


def test_nothing_in_services_imports_spark():
    for path in sources(ROOTS["cryptolake.services"]):
        spark = {m for m in imported_modules(path)
                 if m.split(".")[0] in ("pyspark", "delta") or m.startswith("cryptolake.spark_apps")}
        assert spark == set(), f"{path.relative_to(REPO)} imports {sorted(spark)}"


def test_group_names_are_defined_once():
    definitions = []
    for root in ROOTS.values():
        for path in sources(root):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                    values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                    if values == set(GROUPS):
                        definitions.append(str(path.relative_to(REPO)))
    assert definitions == ["cryptolake/groups.py"]


def test_the_pipeline_spec_schedules_every_extractor_in_known_groups():
    from cryptolake import pipeline
    from cryptolake.services.extract.registry import EXTRACTORS, checked

    spec = checked(pipeline.default())
    assert set(spec.extractors) == set(EXTRACTORS)
    assert {j.group for j in spec.jobs} == set(GROUPS) - {"all"}
