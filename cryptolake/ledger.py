"""The run ledger: one immutable JSON object per run and step, under `<LAKE_URI>/_meta/<step>/<name>/`.

S3 objects cannot be appended to, so there is no shared log file: each run writes its own record when it ends.
A run's data files are written first and its record last, so a reader that goes through the ledger never sees
a half-written snapshot; a run killed before its record exists simply never happened for readers.

A record the lake cannot take when its run ends (the store still down after its retries, a full disk) is not
lost: it is kept in this machine's spool (`spool_dir`) and logged whole, and the next run of the same step on
this machine that writes its own record writes the spooled ones too, marked `details.spooled` (`cryptolake
status` shows them as recorded late). A pod's spool dies with the pod: on Kubernetes the logged line and the task's state carry it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Container, Iterator, Literal

from cryptolake import logs, pipeline
from cryptolake.errors import LakeError
from cryptolake.lake import META, AlreadyWritten, Lake, snapshot_stamp

Step = Literal["extract", "transform", "load"]
STEPS: tuple[Step, ...] = ("extract", "transform", "load")
# success: all done; partial: some chunks failed and are journaled for the next run; skipped: nothing to do
# (e.g. an unchanged map, a budget skip); failed: nothing usable was produced.
STATUSES = ("success", "partial", "skipped", "failed")
VISIBLE = ("success", "partial")

log = logs.get(__name__)


def new_run_id(started: datetime) -> str:
    """Sortable and unique: the UTC start stamp plus random hex (two runs can start in the same second)."""
    return f"{snapshot_stamp(started)}-{secrets.token_hex(3)}"


def spool_dir(lake_uri: str) -> Path:
    """Where this machine keeps the records its runs could not write to the lake `lake_uri` (one directory per
    lake, so a record never lands in another lake): $XDG_STATE_HOME/cryptolake/ledger-spool/<lake hash>/."""
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "cryptolake" / "ledger-spool" / hashlib.sha256(lake_uri.encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    run_id: str
    step: Step
    name: str
    started_at: datetime
    status: str = "running"
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    endpoint: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    credits: int = 0
    rows: int = 0
    files: list[str] = field(default_factory=list)
    upstream: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = asdict(self)
        for key in ("started_at", "ended_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return logs.redact(json.dumps(data, sort_keys=True, default=str)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "RunRecord":
        data = json.loads(raw)
        for key in ("started_at", "ended_at"):
            data[key] = datetime.fromisoformat(data[key]) if data[key] else None
        return cls(**data)


class Ledger:
    def __init__(self, lake: Lake):
        self.lake = lake

    @staticmethod
    def _dir(step: str, name: str) -> str:
        if step not in STEPS:
            raise LakeError(f"unknown ledger step {step!r}", f"Use one of {', '.join(STEPS)}")
        return f"{META}/{step}/{name}"

    def _path(self, record: RunRecord) -> str:
        if record.status not in STATUSES:
            raise LakeError(f"run {record.run_id} has status {record.status!r}", f"Use one of {', '.join(STATUSES)}")
        return f"{self._dir(record.step, record.name)}/{record.run_id}.json"

    def write(self, record: RunRecord) -> str:
        path = self._path(record)
        self.lake.write_bytes(path, record.to_json())
        return path

    def runs(self, step: Step, name: str, statuses: tuple[str, ...] | None = None,
             since: datetime | None = None) -> list[RunRecord]:
        """This job's runs, oldest first (run ids sort by start time); `since` reads only the recent ones."""
        paths = self.lake.list_files(self._dir(step, name), ".json")
        if since is not None:
            cutoff = snapshot_stamp(since)
            paths = [p for p in paths if p.rpartition("/")[2] >= cutoff]
        records = [RunRecord.from_json(self.lake.read_bytes(p)) for p in paths]
        return [r for r in records if statuses is None or r.status in statuses]

    def latest(self, step: Step, name: str, statuses: tuple[str, ...] = VISIBLE) -> RunRecord | None:
        """The newest run with one of these statuses, reading records newest first until one matches."""
        for path in reversed(self.lake.list_files(self._dir(step, name), ".json")):
            record = RunRecord.from_json(self.lake.read_bytes(path))
            if record.status in statuses:
                return record
        return None

    def records(self, skip: Container[tuple[str, str, str]] = ()) -> Iterator[RunRecord]:
        """Every step's records except those whose (step, name, run_id) is in `skip` (those are not read)."""
        for path in self.lake.list_files("_meta", ".json"):
            key = tuple(path.removesuffix(".json").split("/")[1:])
            if len(key) == 3 and key[0] in STEPS and key not in skip:
                yield RunRecord.from_json(self.lake.read_bytes(path))

    def snapshots(self, extractor: str) -> list[RunRecord]:
        """The complete bronze snapshots of an extractor, oldest first: only runs whose record exists count."""
        return [r for r in self.runs("extract", extractor, VISIBLE) if r.files]

    @contextlib.contextmanager
    def run(self, step: Step, name: str, started: datetime | None = None, **fields: Any) -> Iterator[RunRecord]:
        """Run a job step; its record is written when the block ends, as failed if it raised.

        The block sets status (default success), rows, files, credits... on the yielded record. First, the
        staging files a killed run of the same job left are removed; a record the lake cannot take is spooled.
        """
        started = started or datetime.now(timezone.utc)
        record = RunRecord(run_id=new_run_id(started), step=step, name=name, started_at=started, **fields)
        clock = time.monotonic()
        with logs.context(run_id=record.run_id, job=f"{step}:{name}"):
            self._sweep(step, name)
            try:
                yield record
            except BaseException as exc:
                record.status = "failed"
                record.error = logs.redact(f"{type(exc).__name__}: {exc}")
                self._end(record, clock, succeeded=False)
                raise
            if record.status == "running":
                record.status = "success"
            self._end(record, clock, succeeded=True)

    def _sweep(self, step: Step, name: str) -> None:
        """Remove this job's abandoned staging files. The bound is the job's task timeout: no live run of the
        job is older, so none of its files is (the writers' locks cover a run started without Airflow)."""
        self.lake.sweep_staging(f"{step}.{name}", pipeline.default().airflow.step_timeout(step))

    def _end(self, record: RunRecord, clock: float, succeeded: bool) -> None:
        """Write the record; if the lake cannot take it, spool it, and fail a run that had succeeded (its data
        is not visible without the record). Once a record is written, the step's spooled ones go too."""
        record.ended_at = datetime.now(timezone.utc)
        record.duration_seconds = round(time.monotonic() - clock, 3)
        path = self._path(record)
        try:
            self.lake.write_bytes(path, record.to_json())
        except Exception as exc:  # noqa: BLE001 - LakeError, and OS and botocore errors of a failed upload
            kept = self._spool(path, record, exc)
            if succeeded:
                where = f"it is kept in {kept} and the next {record.step} on this machine writes it" if kept else \
                    "it is in the log line above"
                raise LakeError(f"run {record.run_id} of {record.step} {record.name} ended {record.status} but its "
                                f"ledger record could not be written: {record.details['spooled']['reason']}",
                                f"Bring the lake back and run the step again; {where}") from exc
            return
        log.info("run %s %s in %.1fs (%d rows, %d files) -> %s", record.run_id, record.status,
                 record.duration_seconds, record.rows, len(record.files), path)
        try:
            self.flush_spool(record.step)
        except Exception as exc:  # noqa: BLE001 - the run itself is recorded; the spool waits for the next one
            log.warning("spooled ledger records not written: %s", exc)

    def _spool(self, path: str, record: RunRecord, exc: Exception) -> Path | None:
        """Keep the record in this machine's spool (written whole, then renamed) and log it whole."""
        reason = logs.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        record.details["spooled"] = {"at": datetime.now(timezone.utc).isoformat(), "reason": reason}
        data = record.to_json()
        target = spool_dir(self.lake.uri) / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.tmp")
            partial.write_bytes(data)
            os.replace(partial, target)
        except OSError as err:
            log.error("run %s: its ledger record could not be written to the lake (%s) nor kept in %s (%s): %s",
                      record.run_id, reason, target.parent, err.strerror or err, data.decode())
            return None
        log.error("run %s: its ledger record could not be written to the lake (%s); kept in %s: %s",
                  record.run_id, reason, target, data.decode())
        return target

    def flush_spool(self, step: Step) -> list[str]:
        """Write the records of `step` this machine spooled for this lake, oldest first (a step writes only its
        own ledger directory: lake.WRITES); the ledger paths written. A record another run wrote meanwhile is
        dropped from the spool; the first that cannot be written stops the flush."""
        root = spool_dir(self.lake.uri)
        written = []
        for spooled in sorted(root.glob(f"{self._dir(step, '*')}/*.json"), key=lambda p: p.name):
            path = spooled.relative_to(root).as_posix()
            data = spooled.read_bytes()
            try:
                RunRecord.from_json(data)  # only a whole record reaches the lake
            except (ValueError, TypeError) as exc:
                raise LakeError(f"the spooled ledger record {spooled} is not a whole record: {exc}",
                                "Move it out of the spool") from None
            try:
                self.lake.write_bytes(path, data)
                written.append(path)
            except AlreadyWritten:  # another run flushed it first
                pass
            spooled.unlink(missing_ok=True)
        if written:
            log.info("wrote %d ledger records spooled while the lake could not take them: %s", len(written),
                     ", ".join(written))
        return written
