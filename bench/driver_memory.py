"""Driver memory benchmark: the peak resident memory of each Spark app (`cryptolake transform|load --group G`),
split into its JVM and its Python process, to size the SparkApplications' driver (issue 19, point 6).

    .venv/bin/python bench/driver_memory.py [--groups init,10x] [--state-dir .local/driver-memory-stack]

The setup is the cycle benchmark's (bench/cycle_bench.py): a local stack of its own, a fresh database migrated
to head and a fresh lake prefix. Each group's extractors run first, untimed and unmeasured; then each app runs as
the command a driver pod runs, in a process of its own, and the process tree's RSS is sampled every 50 ms.

Locally Spark runs in local mode, so the JVM also runs the tasks an executor pod would: its peak is an upper
bound for a cluster driver's JVM. The Python peak is what the driver pod adds next to the JVM (pyarrow,
SQLAlchemy, boto3 and the app itself), which Spark counts as memory overhead, not heap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE_SECONDS = 0.05


def measured(argv: list[str], env: dict[str, str]) -> dict:
    """Run argv to its end; the peak RSS (MiB) of its JVM, of its Python processes and of the whole tree."""
    import psutil

    process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    peak = {"jvm": 0, "python": 0, "total": 0}
    started = time.monotonic()
    while process.poll() is None:
        now = {"jvm": 0, "python": 0}
        try:
            for proc in [root, *root.children(recursive=True)]:
                kind = "jvm" if proc.name() == "java" else "python"
                now[kind] += proc.memory_info().rss
        except psutil.NoSuchProcess:  # a child ended between the listing and the reading
            continue
        peak = {"jvm": max(peak["jvm"], now["jvm"]), "python": max(peak["python"], now["python"]),
                "total": max(peak["total"], now["jvm"] + now["python"])}
        time.sleep(SAMPLE_SECONDS)
    stderr = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {stderr[-3000:]}")
    return {"seconds": round(time.monotonic() - started, 1),
            **{f"peak_{k}_mib": round(v / 2**20) for k, v in peak.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", default="init,10x")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".local" / "driver-memory-stack")
    parser.add_argument("--pg-port", type=int, default=25732)
    parser.add_argument("--s3-port", type=int, default=19500)
    parser.add_argument("--sandbox-port", type=int, default=18680)
    parser.add_argument("--history-port", type=int, default=18681)
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench's stack running afterwards")
    args = parser.parse_args()

    import requests

    from bench.cycle_bench import fresh_database, machine
    from cryptolake import logs
    from cryptolake.local.stack import LocalStack
    from cryptolake.settings import Settings
    from cryptolake.warehouse.migrate import migrate

    logs.configure(json_lines=False, level=40)
    stack = LocalStack(args.state_dir, pg_port=args.pg_port, s3_port=args.s3_port, sandbox_port=args.sandbox_port,
                       history_port=args.history_port)
    stack.up()
    try:
        requests.post(f"{stack.sandbox.endpoint}/sandbox/usage/reset", timeout=10).raise_for_status()
        lake_uri = f"s3://cryptolake/driver-memory-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
        env = {**os.environ, **stack.env(), "LAKE_URI": lake_uri, "WAREHOUSE_URL": fresh_database(stack)}
        migrate(Settings.load(env=env))
        cli = str(Path(sys.executable).with_name("cryptolake"))
        report = {"machine": machine(), "lake": lake_uri, "apps": {}}
        for group in args.groups.split(","):
            subprocess.run([cli, "extract", "--group", group], env=env, cwd=REPO, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for app in ("transform", "load"):
                report["apps"][f"{group}-{app}"] = result = measured([cli, app, "--group", group], env)
                print(f"  {group}-{app}: {result}", file=sys.stderr)
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep_stack:
            stack.down()


if __name__ == "__main__":
    main()
