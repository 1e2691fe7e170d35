"""Cycle benchmark (issue: one 10x cycle on the embedded stack, each stage's share; target under 60 s on the
2-core machines): the seconds of `cryptolake run --group 10x`, i.e. `cycle.run_cycles(settings, ["10x"])`, and of
each of its stages: extract, spark_session (the JVM and SparkSession start-up a `cryptolake run` pays), transform,
load, post_load_sql.

    .venv/bin/python bench/cycle_bench.py [--repeat 3] [--state-dir .local/bench-stack] [--keep-stack]

Set up once, untimed: the embedded local stack (PostgreSQL, the SeaweedFS S3 server, the sandbox API) in a state
directory and on ports of its own (neither a `make demo` stack nor the test stack is disturbed or measured), the
sandbox's credit usage reset (the bench's stack keeps its own month), a fresh database migrated to head, a fresh
prefix of the stack's bucket as the lake, and the `init` group's cycle (every extractor, transform, load). Then
each timed cycle runs in a fresh Python process, as the command does, so every run pays the JVM start-up; the
stages are the steps `run_cycles` reports, and the process's own start (imports, settings) is shown apart.

The sandbox runs on the wall clock with the default universe (10,000 coins): each 10x cycle extracts a new
minute's market (1,000 listings, global metrics, fear & greed) and transforms and loads it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STAGES = ("extract", "spark_session", "transform", "load", "post_load_sql")
DATABASE = "cycle_bench"


def child(group: str) -> None:
    """One `cryptolake run --group <group>` in this process; its steps as one JSON line on stdout."""
    from cryptolake import logs
    from cryptolake.cycle import run_cycles
    from cryptolake.settings import Settings

    logs.configure(json_lines=False, level=40)
    settings = Settings.load(env=dict(os.environ))
    steps = [{"name": s.name, "exit_code": s.exit_code, "seconds": s.seconds} for s in run_cycles(settings, [group])]
    print(json.dumps(steps))


def profile(env: dict[str, str], since: datetime, logs_before: set[str]) -> dict:
    """Where a cycle's Spark time went: seconds per table from the ledger's transform and load records, and the
    jobs, stages and tasks of its event log (with the seconds spent inside jobs)."""
    from cryptolake.lake import SPARK_EVENTS, Lake
    from cryptolake.ledger import Ledger
    from cryptolake.settings import Settings

    lake = Lake.from_settings(Settings.load(env=env))
    tables = {}
    for record in Ledger(lake).records():
        if record.step in ("transform", "load") and record.started_at >= since:
            tables[f"{record.step}:{record.name}"] = round(record.duration_seconds or 0, 2)
    events = {"jobs": 0, "stages": 0, "tasks": 0, "seconds_in_jobs": 0.0}
    starts = {}
    for path in sorted(set(lake.list_files(SPARK_EVENTS)) - logs_before):
        for line in event_lines(lake.read_bytes(path), path):
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerJobStart":
                events["jobs"] += 1
                starts[event["Job ID"]] = event["Submission Time"]
            elif kind == "SparkListenerJobEnd" and event["Job ID"] in starts:
                events["seconds_in_jobs"] += (event["Completion Time"] - starts.pop(event["Job ID"])) / 1000
            elif kind == "SparkListenerStageCompleted":
                events["stages"] += 1
            elif kind == "SparkListenerTaskEnd":
                events["tasks"] += 1
    events["seconds_in_jobs"] = round(events["seconds_in_jobs"], 2)
    return {"tables": dict(sorted(tables.items(), key=lambda item: -item[1])), "spark_events": events}


def event_lines(data: bytes, path: str) -> list[str]:
    """An event log file's JSON lines (Spark 4 writes them zstd-compressed by default)."""
    import pyarrow as pa

    if path.endswith(".zstd"):
        data = pa.input_stream(pa.BufferReader(data), compression="zstd").read()
    elif "." in path.rpartition("/")[2]:  # another codec (lz4, snappy: Spark's own framing): not read
        return []
    return data.decode().splitlines()


def event_logs(env: dict[str, str]) -> set[str]:
    from cryptolake.lake import SPARK_EVENTS, Lake
    from cryptolake.settings import Settings

    return set(Lake.from_settings(Settings.load(env=env)).list_files(SPARK_EVENTS))


def cycle(group: str, env: dict[str, str]) -> dict:
    since, logs_before = datetime.now(timezone.utc).replace(microsecond=0), event_logs(env)
    started = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--child", group], env=env, cwd=REPO, capture_output=True,
                          text=True)
    wall = time.monotonic() - started
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the {group} cycle exited {done.returncode}: {done.stderr[-3000:]}")
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    failed = [s for s in steps if s["exit_code"] != 0]
    if failed:
        raise RuntimeError(f"the {group} cycle had failing steps {failed}: {done.stderr[-3000:]}")
    stages = {name: sum(s["seconds"] for s in steps if s["name"] == name) for name in STAGES}
    total = sum(stages.values())
    return {"seconds": total, "stages": stages, "process_seconds": wall, "process_start_and_exit": wall - total,
            **profile(env, since, logs_before)}


def machine() -> dict:
    import pyspark

    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": cpu, "ram_gb": round(mem / 2**20, 1), "platform": platform.platform(),
            "python": platform.python_version(), "java": java[0] if java else None, "spark": pyspark.__version__}


def fresh_database(stack) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(stack.postgres.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    return stack.postgres.url(DATABASE)


def show(label: str, run: dict) -> None:
    shares = "  ".join(f"{name} {run['stages'][name]:5.1f}s {run['stages'][name] / run['seconds']:4.0%}"
                       for name in STAGES)
    print(f"  {label}: {run['seconds']:5.1f}s  {shares}  (+{run['process_start_and_exit']:.1f}s process start/exit)",
          file=sys.stderr)
    spark = run["spark_events"]
    slowest = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in list(run["tables"].items())[:6])
    print(f"    spark: {spark['jobs']} jobs, {spark['stages']} stages, {spark['tasks']} tasks, "
          f"{spark['seconds_in_jobs']:.1f}s inside jobs; slowest steps: {slowest}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--group", default="10x")
    parser.add_argument("--state-dir", type=Path, default=REPO / ".local" / "bench-stack")
    parser.add_argument("--pg-port", type=int, default=25632)
    parser.add_argument("--s3-port", type=int, default=19400)
    parser.add_argument("--sandbox-port", type=int, default=18480)
    parser.add_argument("--history-port", type=int, default=18481)
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench's stack running afterwards")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    import requests

    from cryptolake import logs
    from cryptolake.local.stack import LocalStack
    from cryptolake.settings import Settings
    from cryptolake.warehouse.migrate import migrate

    logs.configure(json_lines=False, level=40)
    stack = LocalStack(args.state_dir, pg_port=args.pg_port, s3_port=args.s3_port, sandbox_port=args.sandbox_port,
                       history_port=args.history_port)
    print(f"starting the bench's stack in {args.state_dir}", file=sys.stderr)
    stack.up()
    try:
        requests.post(f"{stack.sandbox.endpoint}/sandbox/usage/reset", timeout=10).raise_for_status()
        lake_uri = f"s3://cryptolake/cycle-bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
        env = {**os.environ, **stack.env(), "LAKE_URI": lake_uri, "WAREHOUSE_URL": fresh_database(stack)}
        migrate(Settings.load(env=env))
        print(f"setup: init cycle into {lake_uri} (untimed)", file=sys.stderr)
        init = cycle("init", env)
        show("init", init)
        runs = []
        for n in range(args.repeat):
            runs.append(cycle(args.group, env))
            show(f"{args.group} run {n + 1}/{args.repeat}", runs[-1])
        median = statistics.median(r["seconds"] for r in runs)
        stage_medians = {name: statistics.median(r["stages"][name] for r in runs) for name in STAGES}
        report = {
            "machine": {**machine(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
            "group": args.group, "lake": lake_uri,
            "init_seconds": round(init["seconds"], 1),
            "seconds_per_run": [round(r["seconds"], 2) for r in runs],
            "stages_per_run": [{k: round(v, 2) for k, v in r["stages"].items()} for r in runs],
            "process_start_and_exit_per_run": [round(r["process_start_and_exit"], 2) for r in runs],
            "median_seconds": round(median, 2),
            "median_stage_seconds": {k: round(v, 2) for k, v in stage_medians.items()},
            "median_stage_share": {k: round(v / sum(stage_medians.values()), 3) for k, v in stage_medians.items()},
            "median_table_seconds": {t: round(statistics.median(r["tables"].get(t, 0) for r in runs), 2)
                                     for t in runs[0]["tables"]},
            "spark_events_per_run": [r["spark_events"] for r in runs],
            "target_seconds": 60, "within_target": median < 60,
        }
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep_stack:
            stack.down()


if __name__ == "__main__":
    main()
