"""The slice of the official API reference the spec tests check against, vendored in contract.json.

Tests must not depend on files outside the repository, so the response schemas of the swagger (the endpoints
the sandbox serves, with the definitions they reference) and the field lists of cmc-api-facts.md are kept here
as data. `make sandbox-contract` regenerates the file; test_spec.py fails when it drifts from the reference.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
REFERENCE = Path(os.environ.get("CMC_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
SWAGGER = REFERENCE / "cmc-api-swagger-v2.0.4.yaml"
FACTS = REFERENCE / "cmc-api-facts.md"
CONTRACT = Path(__file__).with_name("contract.json")
ENDPOINTS = ("/v1/cryptocurrency/map", "/v1/cryptocurrency/listings/latest", "/v2/cryptocurrency/info",
             "/v2/cryptocurrency/quotes/latest", "/v1/cryptocurrency/categories", "/v1/cryptocurrency/category",
             "/v1/exchange/map", "/v1/exchange/info", "/v1/global-metrics/quotes/latest", "/v1/key/info",
             "/v1/fiat/map")


def load_json_examples(markdown: str) -> dict[str, object]:
    """The backticked JSON objects of cmc-api-facts.md, by the label of the paragraph they follow."""
    examples, label = {}, None
    for line in markdown.splitlines():
        if line.endswith(":") and not line.startswith(("|", "-", "`")):
            label = line.rstrip(":").strip()
        elif line.startswith("`{") and label:
            examples[label] = json.loads(line[1:line.index("`", 1)])
        elif ": `{" in line and not line.startswith("-"):
            name, _, rest = line.partition(": `")
            examples[name.strip()] = json.loads(rest[:rest.index("`")])
    return examples


# -- the facts file's field lists ----------------------------------------------------------------------------
def field_list(markdown: str, label: str) -> dict:
    """`name, name{child,...}, name[], name[{...}]` after a label, as nested dicts (lists as [child])."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(label))
    text = [lines[start].split(":", 1)[1]]
    for line in lines[start + 1:]:
        if not line.strip() or re.match(r"^[^,{}]*:(\s|$)", line):
            break
        text.append(line)
    body = re.sub(r"\([^()]*\)", "", " ".join(text)).replace('"', "")
    tokens = re.findall(r"[A-Za-z0-9_\-*]+|[{}\[\],]", body)

    def parse(i: int) -> tuple[dict, int]:
        fields: dict = {}
        while i < len(tokens):
            token = tokens[i]
            if token in "}]":
                return fields, i + 1
            if token == ",":
                i += 1
                continue
            i += 1
            value = None
            if i < len(tokens) and tokens[i] == "{":
                value, i = parse(i + 1)
            elif i < len(tokens) and tokens[i] == "[":
                if tokens[i + 1] == "]":
                    value, i = [None], i + 2
                else:
                    inner, i = parse(i + 2)
                    value, i = [inner], i + 1
            fields[token] = value
        return fields, i

    return parse(0)[0]


def _references(node, found: set[str], definitions: dict) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref and ref.split("/")[-1] not in found:
            name = ref.split("/")[-1]
            found.add(name)
            _references(definitions[name], found, definitions)
        for value in node.values():
            _references(value, found, definitions)
    elif isinstance(node, list):
        for value in node:
            _references(value, found, definitions)


def build() -> dict:
    """The contract from the reference files (swagger slice + parsed facts)."""
    spec = yaml.safe_load(SWAGGER.read_text())
    paths = {endpoint: {"get": spec["paths"][endpoint]["get"]} for endpoint in ENDPOINTS}
    names: set[str] = set()
    _references(paths, names, spec["definitions"])
    text = FACTS.read_text()
    facts = load_json_examples(text)
    for label in ("info item", "exchange info item", "global metrics"):
        facts[label] = field_list(text, label)
    return {"swagger": {"paths": paths, "definitions": {n: spec["definitions"][n] for n in sorted(names)}},
            "facts": facts}


def load() -> dict:
    return json.loads(CONTRACT.read_text())


if __name__ == "__main__":
    if not SWAGGER.exists() or not FACTS.exists():
        sys.exit(f"the API reference is not at {REFERENCE}: set CMC_REFERENCE_DIR")
    CONTRACT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {CONTRACT}")
