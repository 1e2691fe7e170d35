"""`cryptolake backup` and `cryptolake restore`: warehouse dumps in the lake's gold layer (docs/backup.md).

A backup is `<LAKE_URI>/gold/backups/<id>/warehouse.dump` (pg_dump custom format) and `manifest.json`, written
last: a backup without a manifest is incomplete. The id is the UTC start time, YYYYMMDDTHHMMSSZ.

Consistency: one REPEATABLE READ transaction locks the dw and meta tables (ACCESS SHARE, as pg_dump would),
exports its snapshot, and while `pg_dump --snapshot` dumps exactly that snapshot, counts and checksums every
table in it. The manifest's numbers therefore describe the very rows in the dump, whatever loads run meanwhile.

Restore: `pg_restore --no-owner --no-privileges` in a single transaction (objects belong to the restoring user),
then the roles and grants SQL of the migrations up to the backup's revision (it creates the cluster-wide group
roles when missing, so another server works too), then every table's count and checksum against the manifest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib.resources import files

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

from cryptolake import logs, pipeline
from cryptolake.errors import CryptolakeError, LakeError
from cryptolake.lake import BACKUPS, Lake, snapshot_stamp
from cryptolake.settings import Settings

DUMP, MANIFEST = "warehouse.dump", "manifest.json"
BACKED_UP_SCHEMAS = ("dw", "meta")
# The loader's transient staging tables (meta.load_stage_<table>): recreated by every load, so never backed up.
STAGING_PATTERN = "meta.load_stage_*"
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z$")
INCOMPLETE_GRACE = timedelta(hours=1)
LOCK_TIMEOUT = "60s"
# The text form of a row depends on these; both ends of a checksum comparison use the same.
SESSION = ("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
           "SET extra_float_digits = 1; SET bytea_output = 'hex'")
CHECKSUM_METHOD = ("md5 of '<a>:<b>', a and b the sums (as numeric) of the first and last 64 bits of md5(row::text) "
                   "over the table's rows (order-independent; session TimeZone UTC, DateStyle ISO)")
URL_HINT = 'Set it, or eval "$(cryptolake local env)" for the local stack'

log = logs.get(__name__)


@dataclass
class BackupResult:
    id: str
    manifest: dict
    deleted: list[str] = field(default_factory=list)


# -- connections and tools ---------------------------------------------------------------------------------------
def _url(raw: str) -> URL:
    if not raw.startswith("postgresql+psycopg2://"):
        raise CryptolakeError(f"{logs.redact(raw)!r} is not a postgresql+psycopg2:// URL",
                              "Give a SQLAlchemy URL: postgresql+psycopg2://user:pw@host:port/db")
    logs.register_secret(raw)
    url = make_url(raw)
    if url.password:
        logs.register_secret(str(url.password))
    return url


def _connect(url: URL, role: str = "warehouse"):
    """A psycopg2 connection in autocommit (transactions are begun explicitly), with the checksum session."""
    args = url.translate_connect_args(username="user")
    args.update(url.query)
    try:
        connection = psycopg2.connect(**args)
    except psycopg2.OperationalError as exc:
        raise CryptolakeError(f"cannot reach the {role} database {url.database!r}: "
                              f"{logs.redact(str(exc).strip().splitlines()[0])}",
                              "Check the URL and that PostgreSQL is up (cryptolake local up)") from None
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(SESSION)
    return connection


def _conninfo(url: URL) -> str:
    """libpq connection string for pg_dump/pg_restore, without the password (that goes in PGPASSWORD)."""
    def quote(value) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    parts = {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database, **url.query}
    return " ".join(f"{key}={quote(value)}" for key, value in parts.items() if value is not None)


def _child_env(url: URL) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PGPASSWORD"}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return env


def _major(version_num: int) -> int:
    return version_num // 10000


def find_tool(name: str, server_version_num: int) -> str:
    """pg_dump or pg_restore, as new as the server at least: PG_BIN, Debian's /usr/lib/postgresql/<v>/bin
    (newest first; a newer client handles older servers), then PATH."""
    candidates = [os.environ.get("PG_BIN")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    on_path = shutil.which(name)
    candidates.append(os.path.dirname(on_path) if on_path else None)
    too_old = []
    for directory in candidates:
        tool = os.path.join(directory, name) if directory else None
        if not tool or not os.access(tool, os.X_OK):
            continue
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", out)
        if match and int(match.group(1)) >= _major(server_version_num):
            return tool
        too_old.append(f"{tool} ({out.strip()})")
    major = _major(server_version_num)
    if too_old:
        raise CryptolakeError(f"{name} is older than the PostgreSQL {major} server: {', '.join(too_old)}",
                              f"Install postgresql-client-{major} or newer (Debian), or set PG_BIN to its bin directory")
    raise CryptolakeError(f"{name} was not found", f"Install the PostgreSQL client tools (Debian: apt-get install "
                                                   f"postgresql-client, version {major} or newer) or set PG_BIN")


def _run_tool(args: list[str], url: URL, what: str) -> None:
    done = subprocess.run(args, env=_child_env(url), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()] or ["no message"]
        log.error("%s failed:\n%s", what, done.stderr.strip())
        raise CryptolakeError(f"{what} failed (exit {done.returncode}): {lines[0]}",
                              "See the log for the full message")


# -- what is in a database ---------------------------------------------------------------------------------------
def _tables(cursor) -> list[str]:
    """The backed-up tables, `schema.table`, sorted (staging tables left out)."""
    cursor.execute("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'load\\_stage\\_%%' "
                   "ORDER BY 1", (list(BACKED_UP_SCHEMAS),))
    return [row[0] for row in cursor.fetchall()]


def _identifier(table: str) -> sql.Composable:
    schema, _, name = table.partition(".")
    return sql.Identifier(schema, name)


def table_checksum(cursor, table: str) -> dict:
    """Row count and content checksum of one table (CHECKSUM_METHOD), in the cursor's transaction snapshot."""
    cursor.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0), "
        "coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0) "
        "FROM (SELECT md5(t::text) AS h FROM {} AS t) AS rows").format(_identifier(table)))
    count, first, last = cursor.fetchone()
    return {"rows": count, "checksum": hashlib.md5(f"{first}:{last}".encode()).hexdigest()}


def _user_tables(cursor) -> list[str]:
    cursor.execute("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', "
                   "'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
                   "ORDER BY 1")
    return [row[0] for row in cursor.fetchall()]


def _server_version(cursor) -> tuple[str, int]:
    cursor.execute("SELECT current_setting('server_version'), current_setting('server_version_num')::int")
    version, number = cursor.fetchone()
    return version, number


# -- the backups in the lake -------------------------------------------------------------------------------------
def _scan(lake: Lake) -> dict[str, set[str]]:
    """Backup id -> names of its files (directories under gold/backups/ that are no backup id are ignored)."""
    try:
        paths = lake.list_files(BACKUPS)
    except OSError as exc:
        raise LakeError(f"cannot read {lake.uri_of(BACKUPS)}: {exc}", "Check LAKE_URI and the AWS_* settings") from exc
    found: dict[str, set[str]] = {}
    for path in paths:
        parts = path[len(BACKUPS) + 1:].split("/")
        if len(parts) == 2 and ID_PATTERN.match(parts[0]):
            found.setdefault(parts[0], set()).add(parts[1])
    return found


def complete_backups(lake: Lake) -> list[str]:
    """Ids of the backups with a manifest, oldest first."""
    return sorted(i for i, names in _scan(lake).items() if MANIFEST in names)


def _free_id(taken: set[str], now: datetime) -> str:
    moment = now.astimezone(timezone.utc).replace(microsecond=0)
    while snapshot_stamp(moment) in taken:
        moment += timedelta(seconds=1)
    return snapshot_stamp(moment)


def _check_writable(lake: Lake) -> None:
    """Fail before a long dump when the lake cannot take it (locally; S3 answers at the first write)."""
    if not lake.is_local:
        return
    path = lake.uri_of(BACKUPS)[len("file://"):]
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise LakeError(f"the lake is not writable: cannot create {lake.uri_of(BACKUPS)}: {exc.strerror}",
                        "Check LAKE_URI and the directory's permissions") from None
    if not os.access(path, os.W_OK):
        raise LakeError(f"the lake is not writable: {lake.uri_of(BACKUPS)}", "Check the directory's permissions")


def prune(lake: Lake, keep: int, current: str, now: datetime) -> list[str]:
    """Retention: `keep` complete backups stay, `current` (the one just made) and the newest `keep - 1` others;
    incomplete ones go when their newest file is over an hour old (failed backups; a running one writes its
    manifest seconds after its dump). A backup's manifest goes first, so a half-deleted backup is an incomplete
    one, never a corrupt complete one."""
    backups = _scan(lake)
    others = sorted(i for i, names in backups.items() if MANIFEST in names and i != current)
    doomed = others[:max(len(others) - (keep - 1), 0)]
    for backup_id, names in sorted(backups.items()):
        if MANIFEST in names or backup_id == current:
            continue
        times = [lake.modified(f"{BACKUPS}/{backup_id}/{name}") for name in names]
        if all(t is not None and now - t > INCOMPLETE_GRACE for t in times):
            doomed.append(backup_id)
    for backup_id in doomed:
        names = backups[backup_id]
        for name in sorted(names, key=lambda n: n != MANIFEST):
            lake.delete(f"{BACKUPS}/{backup_id}/{name}")
        log.info("backup %s deleted (retention: BACKUP_KEEP=%d)", backup_id, keep)
    return sorted(doomed)


# -- backup ------------------------------------------------------------------------------------------------------
def backup(settings: Settings, now: datetime | None = None) -> BackupResult:
    """`cryptolake backup`: dump, manifest, retention. Returns the new backup's id and manifest."""
    url = _url(settings.require("warehouse_url", URL_HINT))
    lake = Lake.from_settings(settings)
    connection = _connect(url)
    try:
        with connection.cursor() as cursor:
            server_version, server_num = _server_version(cursor)
            tables = _tables(cursor)
        if "meta.alembic_version" not in tables:
            raise CryptolakeError(f"database {url.database!r} has no warehouse schema (no meta.alembic_version)",
                                  "Run cryptolake migrate first, or check WAREHOUSE_URL")
        pg_dump = find_tool("pg_dump", server_num)
        _check_writable(lake)
        # the dump a killed backup left staged (as big as the warehouse): only one older than the task's timeout
        lake.sweep_staging("backup", pipeline.default().airflow.step_timeout("backup"))
        backup_id = _free_id(set(_scan(lake)), now or datetime.now(timezone.utc))
        created_at = datetime.now(timezone.utc)
        with logs.context(backup_id=backup_id):
            log.info("backing up %s to %s", url.render_as_string(hide_password=True),
                     lake.uri_of(f"{BACKUPS}/{backup_id}"))
            manifest = _dump(connection, url, lake, pg_dump, backup_id, tables)
            manifest = {"id": backup_id, "created_at": created_at.isoformat(timespec="seconds"),
                        "database": url.database, "server_version": server_version, **manifest}
            # The manifest last: it makes the backup complete.
            _write(lake, f"{BACKUPS}/{backup_id}/{MANIFEST}",
                   lambda rel: lake.write_bytes(rel, json.dumps(manifest, indent=2).encode() + b"\n"))
            log.info("backup %s complete: %d tables, %d rows, %d bytes", backup_id, len(manifest["tables"]),
                     sum(t["rows"] for t in manifest["tables"].values()), manifest["dump"]["bytes"])
            try:
                deleted = prune(lake, settings.backup_keep, backup_id, datetime.now(timezone.utc))
            except (CryptolakeError, OSError) as exc:  # the backup itself is complete; say so, and why not pruned
                log.warning("backup %s is complete but old backups were not pruned: %s", backup_id, exc)
                deleted = []
        return BackupResult(backup_id, manifest, deleted)
    finally:
        connection.close()


def _write(lake: Lake, rel: str, write) -> None:
    """A lake write whose non-lake failures (no permission, unreachable store) become one clear error."""
    try:
        write(rel)
    except CryptolakeError:
        raise
    except Exception as exc:  # noqa: BLE001 - botocore and OS errors alike
        raise LakeError(f"the lake is not writable: {lake.uri_of(rel)}: {exc}",
                        "Check LAKE_URI and the AWS_* settings or the directory's permissions") from exc


def _dump(connection, url: URL, lake: Lake, pg_dump: str, backup_id: str, tables: list[str]) -> dict:
    """In one snapshot: pg_dump into the lake (staged locally, then published) and the per-table checksums."""
    with connection.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            # LOCK before the first query, so the locks come before the snapshot: no DDL slips in between.
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
            cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                sql.SQL(", ").join(_identifier(t) for t in tables)))
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot = cursor.fetchone()[0]
            cursor.execute("SELECT version_num FROM meta.alembic_version")
            revision = (cursor.fetchone() or [None])[0]
            tables = _tables(cursor)  # as the snapshot has them
            dump_rel = f"{BACKUPS}/{backup_id}/{DUMP}"
            dump: dict = {}

            def write_dump(rel: str) -> None:
                with lake.staged_file(rel) as path:
                    args = [pg_dump, "--format=custom", f"--snapshot={snapshot}", f"--lock-wait-timeout={LOCK_TIMEOUT}",
                            f"--exclude-table={STAGING_PATTERN}", f"--file={path}", f"--dbname={_conninfo(url)}"]
                    child = subprocess.Popen(args, env=_child_env(url), stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, text=True)
                    try:  # the checksums run while pg_dump dumps the same snapshot
                        dump["tables"] = {t: table_checksum(cursor, t) for t in tables}
                    except BaseException:
                        child.kill()
                        child.wait()
                        raise
                    _, err = child.communicate()
                    if child.returncode != 0:
                        lines = [line for line in err.strip().splitlines() if line.strip()] or ["no message"]
                        log.error("pg_dump failed:\n%s", err.strip())
                        raise CryptolakeError(f"pg_dump failed (exit {child.returncode}): {lines[0]}",
                                              "See the log; a pending schema change can hold the tables "
                                              f"longer than {LOCK_TIMEOUT}: run the backup again")
                    dump["bytes"], dump["sha256"] = _sha256(path)

            _write(lake, dump_rel, write_dump)
        finally:
            cursor.execute("ROLLBACK")  # read only: nothing to commit; ends the exported snapshot
    pg_dump_version = subprocess.run([pg_dump, "--version"], capture_output=True, text=True).stdout.strip()
    return {"schema_revision": revision, "pg_dump": pg_dump_version,
            "dump": {"path": DUMP, "format": "pg_dump custom (-Fc)", "bytes": dump["bytes"], "sha256": dump["sha256"]},
            "checksum_method": CHECKSUM_METHOD, "tables": dump["tables"]}


def _sha256(path: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as stream:
        while chunk := stream.read(8 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# -- restore -----------------------------------------------------------------------------------------------------
def read_manifest(lake: Lake, backup_id: str) -> dict:
    """The manifest of a complete backup, or an error naming the latest complete ids."""
    backups = _scan(lake)
    if backup_id in backups and MANIFEST not in backups[backup_id]:
        raise CryptolakeError(f"backup {backup_id} is incomplete (no {MANIFEST}): it failed or is still running",
                              "Choose another backup")
    if backup_id not in backups:
        latest = sorted(i for i, names in backups.items() if MANIFEST in names)[-5:][::-1]
        raise CryptolakeError(f"backup {backup_id!r} not found in {lake.uri_of(BACKUPS)}",
                              f"Latest backups: {', '.join(latest)}" if latest else
                              "There are no backups there yet: run cryptolake backup (or check LAKE_URI)")
    return json.loads(lake.read_bytes(f"{BACKUPS}/{backup_id}/{MANIFEST}"))


def roles_sql(revision: str) -> list[str]:
    """The roles and grants SQL of every migration from the first up to `revision`, in order."""
    from cryptolake.warehouse.migrate import alembic_config  # first: it quiets alembic's plugin registry

    from alembic.script import ScriptDirectory  # noqa: I001

    script = ScriptDirectory.from_config(alembic_config())
    try:
        chain = [r.revision for r in script.iterate_revisions(revision, "base")][::-1]
    except Exception as exc:  # noqa: BLE001 - alembic raises several kinds for an unknown revision
        raise CryptolakeError(f"the backup is at schema revision {revision}, which this cryptolake does not know",
                              "Restore with the cryptolake version that made the backup, or a newer one") from exc
    out = []
    for rev in chain:
        path = files("cryptolake.warehouse") / "sql" / rev / "roles.sql"
        if path.is_file():
            out.append(path.read_text())
    return out


def restore(settings: Settings, backup_id: str, target: str | None = None, force: bool = False) -> list[str]:
    """`cryptolake restore`: restore a backup into WAREHOUSE_URL or `target`, then verify it. Returns the lines to
    print."""
    url = _url(target or settings.require("warehouse_url", URL_HINT + ", or give --target URL"))
    if not ID_PATTERN.match(backup_id):
        raise CryptolakeError(f"{backup_id!r} is not a backup id", "Ids look like 20260101T000000Z (UTC)")
    lake = Lake.from_settings(settings)
    manifest = read_manifest(lake, backup_id)
    grants = roles_sql(manifest["schema_revision"])
    connection = _connect(url, "restore target")
    try:
        with connection.cursor() as cursor:
            _, server_num = _server_version(cursor)
            occupied = _user_tables(cursor)
        if occupied and not force:
            raise CryptolakeError(
                f"restore target database {url.database!r} is not empty ({len(occupied)} tables, e.g. {occupied[0]})",
                "Restore into a new empty database (CREATE DATABASE ...; --target URL), or pass --force to replace "
                "the warehouse objects in this one")
        pg_restore = find_tool("pg_restore", server_num)
        with logs.context(backup_id=backup_id), tempfile.TemporaryDirectory(prefix="cryptolake-restore-") as tmp:
            path = os.path.join(tmp, DUMP)
            lake.read_to_file(f"{BACKUPS}/{backup_id}/{DUMP}", path)
            size, sha256 = _sha256(path)
            if (size, sha256) != (manifest["dump"]["bytes"], manifest["dump"]["sha256"]):
                raise CryptolakeError(f"backup {backup_id}'s dump does not match its manifest "
                                      f"({size} bytes, sha256 {sha256[:12]}…)", "The backup is damaged: choose another")
            log.info("restoring backup %s into %s%s", backup_id, url.render_as_string(hide_password=True),
                     " (--force: replacing its warehouse objects)" if occupied else "")
            args = [pg_restore, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"]
            if occupied:
                args += ["--clean", "--if-exists"]
            _run_tool(args + [f"--dbname={_conninfo(url)}", path], url, "pg_restore")
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")  # group roles (cluster-wide, created when missing) and their grants
            for text in grants:
                cursor.execute(text)
            cursor.execute("COMMIT")
            problems = verify(cursor, manifest)
        if problems:
            raise CryptolakeError(f"restore of {backup_id} into {url.database!r} does not match the backup: "
                                  + "; ".join(problems), "Do not use this database; see the log")
        rows = sum(t["rows"] for t in manifest["tables"].values())
        log.info("backup %s restored and verified: %d tables, %d rows", backup_id, len(manifest["tables"]), rows)
        return [f"restored backup {backup_id} into database {url.database} (schema revision "
                f"{manifest['schema_revision']}): {len(manifest['tables'])} tables, {rows} rows, counts and checksums "
                "verified"]
    finally:
        connection.close()


def verify(cursor, manifest: dict) -> list[str]:
    """Differences between the database's tables and the manifest's counts and checksums (empty: identical)."""
    present = set(_tables(cursor))
    problems = []
    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        for table, expected in sorted(manifest["tables"].items()):
            if table not in present:
                problems.append(f"{table} missing")
                continue
            got = table_checksum(cursor, table)
            if got != expected:
                problems.append(f"{table}: {got['rows']} rows, checksum {got['checksum']} (backup: {expected['rows']} "
                                f"rows, {expected['checksum']})")
    finally:
        cursor.execute("ROLLBACK")
    for table in sorted(present - set(manifest["tables"])):
        log.warning("%s is in the database but not in the backup (left from before the restore)", table)
    return problems
