"""The lake: one API over `file://` and `s3://` roots, with the path contract of DESIGN.md.

Writes are immutable and atomic, and the store itself refuses to replace a file (docs/lake.md). A local file
is written under a temporary name and hard-linked into place (the link fails if the name exists); an S3 object
is uploaded with `If-None-Match: *` (the store answers 412 if the key exists) and becomes visible only when its
upload completes. A snapshot as a whole becomes visible when its run's ledger record is written (see ledger.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cryptolake import logs
from cryptolake.errors import LakeError
from cryptolake.settings import Settings

log = logs.get(__name__)

LAYERS = ("bronze", "silver", "gold")
SPARK_EVENTS = "spark-events"
META = "_meta"                       # the run ledger, _meta/<step>/<name>/ (ledger.py)
BACKUPS = "gold/backups"             # warehouse dumps, gold/backups/<id>/ (backup.py)
QUARANTINE = "bronze/_quarantine"
GOLD_FEATURES = "gold/features"      # ML feature Delta tables, gold/features/<name> (docs/gold-features.md)
AIRFLOW_LOGS = "airflow-logs"        # Airflow's task logs on a cluster (charts/values/airflow.yaml, remote logging)
# What each component writes (and deletes) under the lake root, its run ledger (`_meta/<step>/`) included. Where a
# store scopes credentials by key prefix (the chart's SeaweedFS), each component's identity may write there only.
# Reads stay bucket-wide: the steps read across layers, and the S3 clients probe the bucket and parent keys.
# The chart has a copy (charts/cryptolake/files/lake-writes.json, `make generate`).
WRITES = {
    "extract": ("bronze", "_meta/extract"),
    "transform": ("silver", GOLD_FEATURES, "_meta/transform", SPARK_EVENTS),
    "load": ("_meta/load", SPARK_EVENTS),
    "backup": (BACKUPS,),
    "history": (SPARK_EVENTS,),  # the History Server's event-log cleaner
    "airflow": (AIRFLOW_LOGS,),
}


def feature_path(name: str) -> str:
    """The lake-relative path of the gold feature table `name`."""
    return f"{GOLD_FEATURES}/{name}"

# boto3's classic transfer manager (multipart from 8 MiB) sends every request through our client, so the
# create-only hook below applies to it; the CRT one would bypass the hook.
_UPLOADS = TransferConfig(preferred_transfer_client="classic")
# 412: the key exists; 409: another conditional write to the key was under way.
_CONCURRENT_WRITE_CODES = ("PreconditionFailed", "ConditionalRequestConflict")
# A write that fails for want of space: the disk or a quota is full, or the file size limit is reached.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# An S3 store that is briefly unreachable (restarting, failing over) is retried before the step fails, within
# a bound: the clients' defaults give up within a second, so a restart of the store lost the run's ledger record.
# pyarrow (reads, listings): exponential backoff from 50 ms, about 25 s in all; boto3 (writes): jittered, ~30 s.
S3_READ_ATTEMPTS = 10
S3_WRITE_ATTEMPTS = 12


def snapshot_stamp(ts: datetime) -> str:
    """UTC YYYYMMDDTHHMMSSZ: the name part shared by bronze files, run ids and backup ids."""
    return _utc(ts).strftime("%Y%m%dT%H%M%SZ")


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise LakeError(f"timestamp {ts.isoformat()} has no time zone", "Pass an aware UTC datetime")
    return ts.astimezone(timezone.utc)


def bronze_path(extractor: str, snapshot_ts: datetime, part: int | None = None) -> str:
    """`bronze/<extractor>/snapshot_date=YYYY-MM-DD/<extractor>-YYYYMMDDTHHMMSSZ[-partN].parquet`."""
    suffix = "" if part is None else f"-part{part}"
    return (f"bronze/{extractor}/snapshot_date={_utc(snapshot_ts):%Y-%m-%d}/"
            f"{extractor}-{snapshot_stamp(snapshot_ts)}{suffix}.parquet")


def quarantine_path(extractor: str, snapshot_ts: datetime, name: str) -> str:
    return f"{QUARANTINE}/{extractor}/snapshot_date={_utc(snapshot_ts):%Y-%m-%d}/{name}"


# -- staging files and the jobs they belong to -----------------------------------------------------------------
# A write stages its data in a file first (see _AtomicOutput). A run killed mid-write (SIGKILL, OOM) leaves that
# file behind; the next run of the same job removes it (Lake.sweep_staging). A job is "extract.<extractor>",
# "<step>.<name>" for the other ledger steps, or "backup": the one that writes the path, by the layout.
_LOCAL_STAGING = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")  # .<name>.<uuid>.tmp beside the target (file://)
S3_STAGING_PREFIX = "cryptolake-"                           # <temp dir>/cryptolake-<job>.<random>.part (s3://)


def job_of(rel: str) -> str | None:
    """The job that writes `rel`: bronze and quarantine files and extract records are their extractor's,
    other ledger records their step and name's, backups the backup's; None for any other path."""
    parts = rel.strip("/").split("/")
    if rel.startswith(QUARANTINE + "/") and len(parts) > 3:
        return f"extract.{parts[2]}"
    if parts[0] == "bronze" and len(parts) > 2:
        return f"extract.{parts[1]}"
    if parts[0] == META and len(parts) > 3:
        return f"{parts[1]}.{parts[2]}"
    if rel.startswith(BACKUPS + "/"):
        return "backup"
    return None


def job_dirs(job: str) -> list[str]:
    """The lake directories `job` writes to (job_of's inverse): where its file:// staging files lie."""
    step, _, name = job.partition(".")
    if step == "backup":
        return [BACKUPS]
    return [f"{META}/{step}/{name}"] + ([f"bronze/{name}", f"{QUARANTINE}/{name}"] if step == "extract" else [])


class AlreadyWritten(LakeError):
    """The path exists already, or another writer published it first: lake files are never replaced."""


@dataclass(frozen=True)
class WriteResult:
    path: str
    rows: int
    bytes: int


def _create_only(params: dict, **_) -> None:
    """Make a PutObject or CompleteMultipartUpload conditional: boto3's upload manager cannot pass IfNoneMatch."""
    params["IfNoneMatch"] = "*"


def _check_bucket(s3, bucket: str, endpoint: str | None) -> None:
    """Before the first write: some stores (SeaweedFS) create a missing bucket on put, so a typo in LAKE_URI
    would start a new lake silently; and an unreachable endpoint should fail once, clearly."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise LakeError(f"the bucket {bucket!r} of LAKE_URI does not exist",
                            "Create it (the chart's bucket-init job, `cryptolake local up`) or fix LAKE_URI") from None
        # anything else (credentials, policy): the write itself reports it with the store's code and message
    except BotoCoreError as err:
        raise LakeError(f"cannot reach the S3 endpoint {endpoint or 'of AWS'}: {err}",
                        "Check AWS_ENDPOINT_URL and that the S3 server is up") from None


class Lake:
    """A lake root. Paths given to its methods are relative to the root, with `/` separators.

    On S3, reads go through pyarrow and writes through `s3` (a boto3 client): only boto3 can make an upload
    conditional. The client is made on the first write: most lakes (Spark's, the ledger readers) never write.
    """

    def __init__(self, uri: str, filesystem: pafs.FileSystem, root: str,
                 s3_client: Callable[[], Any] | None = None):
        self.uri = uri.rstrip("/")
        self.fs = filesystem
        self._root = root.rstrip("/")
        self.is_local = isinstance(filesystem, pafs.LocalFileSystem)
        self._s3_client = s3_client

    @functools.cached_property
    def s3(self):
        return self._s3_client()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Lake":
        parts = urlsplit(settings.lake_uri)
        if parts.scheme == "file":
            return cls(settings.lake_uri, pafs.LocalFileSystem(), parts.path)
        endpoint = urlsplit(settings.aws_endpoint_url) if settings.aws_endpoint_url else None
        fs = pafs.S3FileSystem(
            access_key=settings.aws_access_key_id,
            secret_key=settings.aws_secret_access_key,
            region=settings.aws_region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            allow_bucket_creation=False,
            allow_bucket_deletion=False,
            retry_strategy=pafs.AwsDefaultS3RetryStrategy(max_attempts=S3_READ_ATTEMPTS),
        )

        def s3_client():
            s3 = boto3.client(
                "s3",
                endpoint_url=settings.aws_endpoint_url,
                aws_access_key_id=settings.aws_access_key_id,
                aws_secret_access_key=settings.aws_secret_access_key,
                region_name=settings.aws_region,
                # pyarrow and S3A address buckets by path under an endpoint; boto3 would use virtual hosts
                config=Config(s3={"addressing_style": "path" if endpoint else "auto"},
                              retries={"mode": "standard", "max_attempts": S3_WRITE_ATTEMPTS}),
            )
            if settings.lake_conditional_writes:
                for operation in ("PutObject", "CompleteMultipartUpload"):
                    s3.meta.events.register(f"before-parameter-build.s3.{operation}", _create_only)
            _check_bucket(s3, parts.netloc, settings.aws_endpoint_url)
            return s3

        return cls(settings.lake_uri, fs, parts.netloc + parts.path, s3_client)

    # -- addressing ---------------------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        rel = rel.strip("/")
        if ".." in rel.split("/"):
            raise LakeError(f"lake path {rel!r} escapes the lake root", "Use paths relative to LAKE_URI")
        return f"{self._root}/{rel}" if rel else self._root

    def uri_of(self, rel: str) -> str:
        return f"{self.uri}/{rel.strip('/')}"

    def spark_uri(self, rel: str = "") -> str:
        """The URI Spark's Hadoop filesystems understand (S3A for s3://)."""
        uri = self.uri_of(rel) if rel else self.uri
        return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri

    # -- reading ------------------------------------------------------------------------------------------
    def _info(self, target: str | pafs.FileSelector):
        """get_file_info, with a store that cannot be reached (endpoint down, no such host) as one clear error."""
        try:
            return self.fs.get_file_info(target)
        except FileNotFoundError:
            raise
        except OSError as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise LakeError(f"cannot read the lake {self.uri}: {reason}",
                            "Check LAKE_URI, the AWS_* settings and that the S3 server is up") from None

    def exists(self, rel: str) -> bool:
        return self._info(self._abs(rel)).type != pafs.FileType.NotFound

    def list_files(self, prefix: str, suffix: str = "") -> list[str]:
        """Relative paths of the files under prefix (recursively), sorted; hidden temp files excluded."""
        selector = pafs.FileSelector(self._abs(prefix), allow_not_found=True, recursive=True)
        out = []
        for info in self._info(selector):
            name = info.base_name
            if info.type == pafs.FileType.File and name.endswith(suffix) and not name.startswith("."):
                out.append(info.path[len(self._root) + 1:])
        return sorted(out)

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self._abs(rel)) as stream:
                return stream.read()
        except FileNotFoundError as exc:
            raise LakeError(f"{self.uri_of(rel)} does not exist") from exc

    def modified(self, rel: str) -> datetime | None:
        """When the file was last written (UTC), None if it does not exist."""
        info = self._info(self._abs(rel))
        if info.type == pafs.FileType.NotFound or info.mtime is None:
            return None
        return info.mtime if info.mtime.tzinfo else info.mtime.replace(tzinfo=timezone.utc)

    def read_to_file(self, rel: str, local_path: str, chunk: int = 8 << 20) -> int:
        """Copy a lake file to a local path in chunks (memory stays bounded by one chunk); returns its size."""
        try:
            with self.fs.open_input_stream(self._abs(rel)) as stream, open(local_path, "wb") as out:
                size = 0
                while data := stream.read(chunk):
                    out.write(data)
                    size += len(data)
                return size
        except FileNotFoundError as exc:
            raise LakeError(f"{self.uri_of(rel)} does not exist") from exc

    def read_parquet(self, paths: str | Iterable[str], columns: list[str] | None = None) -> pa.Table:
        """The files as one table; with `columns`, only those column chunks are read from the store."""
        paths = [paths] if isinstance(paths, str) else list(paths)
        if not paths:
            raise LakeError("no Parquet files given to read")
        return pa.concat_tables(
            [pq.read_table(self._abs(p), filesystem=self.fs, columns=columns) for p in paths],
            promote_options="permissive",
        )

    # -- writing ------------------------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> WriteResult:
        with self._atomic_output(rel) as stream:
            stream.write(data)
        return WriteResult(rel, 0, len(data))

    def write_parquet(self, rel: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch | pa.Table]) -> WriteResult:
        """Stream batches into one immutable Parquet file; memory stays bounded by one batch."""
        rows = 0
        with self._atomic_output(rel) as stream:
            with pq.ParquetWriter(stream, schema, compression="zstd") as writer:
                for batch in batches:
                    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
                    writer.write_table(table.cast(schema))
                    rows += table.num_rows
            size = stream.tell()
        return WriteResult(rel, rows, size)

    @contextlib.contextmanager
    def staged_file(self, rel: str) -> Iterator[str]:
        """A local path to fill (a child process may write it, e.g. `pg_dump -f`); when the block ends without
        error the file is published at `rel` like any lake write (create-only, atomic), then the path is gone.

        Large files never pass through Python's memory: the local file is linked or uploaded as it is.
        """
        output = self._atomic_output(rel)
        try:
            yield output.tmp
            output._publish()
        finally:
            output.discard()

    def delete(self, rel: str) -> None:
        """Remove one file (the only lake operation that does: backup retention). A missing file is no error.

        Locally an emptied parent directory goes too; on S3 the object is deleted through boto3, which (unlike
        pyarrow) leaves no directory marker behind.
        """
        path = self._abs(rel)
        if self.is_local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            with contextlib.suppress(OSError):  # not empty, or gone already
                os.rmdir(os.path.dirname(path))
            return
        bucket, _, key = path.partition("/")
        try:
            self.s3.delete_object(Bucket=bucket, Key=key)
        except ClientError as err:
            error = err.response.get("Error", {})
            raise LakeError(f"{self.uri_of(rel)} could not be deleted: {error.get('Code')}: "
                            f"{error.get('Message', '').rstrip('.')}", "Check the AWS_* settings") from err

    def ensure_dir(self, rel: str) -> None:
        """Make a directory exist, as a directory marker on S3 (S3A and the History Server need one)."""
        path = self._abs(rel)
        if self._info(path).type == pafs.FileType.NotFound:
            self.fs.create_dir(path, recursive=True)

    def sweep_staging(self, job: str, older_than: timedelta) -> list[str]:
        """Remove the staging files a killed run of `job` left (see job_of); the paths removed.

        Only this job's files (by name and place), only those last modified more than `older_than` ago, and only
        those no live process holds: every writer keeps a lock on its staging file until it is gone, and the
        kernel drops the lock of a dead process. `older_than` is a bound a live run of the job cannot reach (its
        task's execution timeout), so a file made a moment ago, before its writer took the lock, is left alone.
        On S3 the files are in this machine's temp dir (a pod's dies with the pod); on file:// beside their
        targets, in the job's directories.
        """
        if self.is_local:  # os.walk passes over directories it cannot read
            candidates = [os.path.join(top, name) for rel in job_dirs(job)
                          for top, _, names in os.walk(self._abs(rel)) for name in names
                          if _LOCAL_STAGING.match(name)]
        else:
            prefix = f"{S3_STAGING_PREFIX}{job}."
            try:
                with os.scandir(tempfile.gettempdir()) as entries:
                    candidates = [e.path for e in entries if e.name.startswith(prefix) and e.name.endswith(".part")
                                  and "." not in e.name[len(prefix):-len(".part")]]
            except OSError as exc:  # housekeeping: never the reason a run fails
                log.warning("staging files of %s not swept: %s", job, exc)
                return []
        cutoff = time.time() - older_than.total_seconds()
        swept = [path for path in candidates if _remove_if_abandoned(path, cutoff)]
        if swept:
            log.info("removed %d staging files a killed run of %s left: %s", len(swept), job, ", ".join(swept))
        return swept

    def _atomic_output(self, rel: str) -> "_AtomicOutput":
        # Only an early, friendly refusal: a writer can still publish between this check and ours (see _publish).
        if self.exists(rel):
            raise AlreadyWritten(f"{self.uri_of(rel)} already exists",
                            "Lake files are immutable; write a new snapshot instead of replacing one")
        return _AtomicOutput(self, self._abs(rel), rel)


def _remove_if_abandoned(path: str, cutoff: float) -> bool:
    """Unlink `path` if it was last modified before `cutoff` and no process holds its lock. A file that went
    meanwhile (published, or swept by another run) or that this user may not touch is left to others."""
    try:
        if os.stat(path).st_mtime >= cutoff:
            return False
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its writer is alive
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class _AtomicOutput:
    """Writes go to a local temporary file first; the target appears only once the file is complete.

    Locally the temp file is hard-linked into place; on S3 it is uploaded after close. An S3 output stream
    cannot be aborted from Python, so streaming straight to S3 could leave a half-written object.
    """

    def __init__(self, lake: Lake, path: str, rel: str):
        self.lake, self.path, self.rel = lake, path, rel
        if lake.is_local:
            parent, _, name = path.rpartition("/")
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as err:
                raise LakeError(f"cannot write {lake.uri_of(rel)}: {err.strerror}",
                                "LAKE_URI must be a directory this user can create and write") from None
            self.tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
        else:
            self.tmp = os.path.join(tempfile.gettempdir(), "")  # the file's directory, until it exists
        try:
            if lake.is_local:
                self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            else:
                job = job_of(rel)
                prefix = f"{S3_STAGING_PREFIX}{job}." if job else S3_STAGING_PREFIX
                self._fd, self.tmp = tempfile.mkstemp(prefix=prefix, suffix=".part")
        except OSError as err:
            if err.errno in _DISK_FULL:
                raise self._disk_full(err) from None
            raise
        # Held until the file is gone, and released by the kernel when the process dies however it dies: a
        # sweep never takes the file of a writer that is still alive (Lake.sweep_staging).
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def discard(self) -> None:
        """Remove the staging file (if the publish did not consume it) and release its lock."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
        os.close(self._fd)

    def __enter__(self) -> pa.NativeFile:
        try:
            self.stream = pafs.LocalFileSystem().open_output_stream(self.tmp)
        except BaseException:
            self.discard()
            raise
        return self.stream

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self.stream.close()
            if exc_type is None:
                self._publish()
        except OSError as err:
            if err.errno in _DISK_FULL:
                raise self._disk_full(err) from None
            raise
        finally:
            self.discard()
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise self._disk_full(exc) from None
        return False

    def _disk_full(self, err: OSError) -> LakeError:
        """A full disk (or quota, or file size limit) is an operator's problem to fix, not a traceback."""
        return LakeError(f"cannot write {self.lake.uri_of(self.rel)}: {os.strerror(err.errno)} "
                         f"in {os.path.dirname(self.tmp)}",
                         "Free space there (or give it a bigger volume), then re-run the step: nothing of this "
                         "write became visible")

    def _publish(self) -> None:
        """Create the target from the temp file; the link or the conditional put fails if it exists already."""
        try:
            if self.lake.is_local:
                os.link(self.tmp, self.path)
            else:
                bucket, _, key = self.path.partition("/")
                with create_transfer_manager(self.lake.s3, _UPLOADS) as uploads:
                    uploads.upload(self.tmp, bucket, key).result()
        except FileExistsError as err:
            raise self._written_concurrently() from err
        except ClientError as err:
            error = err.response.get("Error", {})
            if error.get("Code") in _CONCURRENT_WRITE_CODES:
                raise self._written_concurrently() from err
            raise LakeError(f"{self.lake.uri_of(self.rel)} could not be written: {error.get('Code')}: "
                            f"{error.get('Message', '').rstrip('.')}", "Check the AWS_* settings; a store "
                            "that rejects If-None-Match needs LAKE_CONDITIONAL_WRITES=false (docs/lake.md)") from err

    def _written_concurrently(self) -> LakeError:
        return AlreadyWritten(f"{self.lake.uri_of(self.rel)} was written concurrently",
                         "Another run wrote the same snapshot; keep one of them")
