"""A stand-in for kubectl in tests of charts/kind-secrets.sh and `make deploy`: `create ... --dry-run=client -o
yaml` and `label --local` are the real kubectl (REAL_KUBECTL, exec'd so the process-substitution file descriptors stay open); `get
secret NAME --ignore-not-found -o go-template=...` and `apply -f -` work on a directory of JSON objects
(FAKE_KUBE_STATE). Every call's argv is appended to FAKE_KUBE_STATE/calls.jsonl; FAKE_KUBE_FAIL_GET=1 makes `get`
fail as an unreachable cluster does."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import yaml

STATE = Path(os.environ["FAKE_KUBE_STATE"])


def main(argv: list[str]) -> int:
    with open(STATE / "calls.jsonl", "a") as calls:
        calls.write(json.dumps(argv) + "\n")
    args, namespace, i = [], None, 0
    while i < len(argv):  # drop the global flags, keep the namespace
        if argv[i] == "--context":
            i += 2
        elif argv[i] == "-n":
            namespace, i = argv[i + 1], i + 2
        else:
            args.append(argv[i])
            i += 1
    if args[0] == "create" or (args[0] == "label" and "--local" in args):  # offline: the real one
        real = os.environ["REAL_KUBECTL"]
        os.execv(real, [real, *(["-n", namespace] if namespace else []), *args])
    if args[:2] == ["get", "secret"]:
        if os.environ.get("FAKE_KUBE_FAIL_GET"):
            print("The connection to the server localhost:8080 was refused", file=sys.stderr)
            return 1
        assert "--ignore-not-found" in args
        [template] = [a.split("=", 1)[1] for a in args if a.startswith("go-template=")] or \
            [args[args.index("-o") + 1].split("=", 1)[1]]
        key = re.fullmatch(r'\{\{with index \.data "([^"]+)"\}\}\{\{\.\}\}\{\{end\}\}', template)[1]
        path = STATE / f"Secret.{namespace}.{args[2]}.json"
        if path.exists():
            sys.stdout.write(json.loads(path.read_text()).get("data", {}).get(key, ""))
        return 0
    if args[:2] == ["apply", "-f"] and args[2] == "-":
        obj = yaml.safe_load(sys.stdin.read())
        meta = obj["metadata"]
        path = STATE / f"{obj['kind']}.{meta.get('namespace', '')}.{meta['name']}.json"
        existed = path.exists()
        path.write_text(json.dumps(obj))
        print(f"{obj['kind'].lower()}/{meta['name']} {'configured' if existed else 'created'}")
        return 0
    print(f"fake kubectl: unsupported {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
