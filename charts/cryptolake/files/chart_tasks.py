"""The cryptolake chart's own tasks, run by its hook Job and `helm test` pods with the images' Python.

    python3 chart_tasks.py bucket-init       create the lake bucket when missing (in AWS_REGION) and spark-events/.keep
    python3 chart_tasks.py s3-config FILE    write SeaweedFS's S3 identities (-s3.config) from the Secrets' keys
    python3 chart_tasks.py check-s3          the bucket answers and spark-events/.keep is readable
    python3 chart_tasks.py check-postgresql  WAREHOUSE_URL accepts a connection and a query
    python3 chart_tasks.py check-history URL the Spark History Server's REST API answers

Settings come from the environment the pods get from the chart's ConfigMap and a component's Secret (LAKE_URI,
AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, WAREHOUSE_URL). Each task retries for
a while (the servers may still be starting) and ends with one line saying what worked or what failed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from urllib.parse import urlsplit

EVENTS_MARKER = "spark-events/.keep"  # the History Server refuses a log directory that does not exist
# What each component writes under the lake root (a copy of cryptolake.lake.WRITES), next to this script.
WRITES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lake-writes.json")
ADMIN = "admin"  # bucket-init's identity: any action
ATTEMPTS = int(os.environ.get("CHART_TASK_ATTEMPTS", "30"))
PAUSE_SECONDS = float(os.environ.get("CHART_TASK_PAUSE_SECONDS", "5"))


def bucket() -> str:
    lake = urlsplit(os.environ["LAKE_URI"])
    if lake.scheme != "s3" or not lake.netloc:
        raise SystemExit(f"LAKE_URI {os.environ['LAKE_URI']!r} is not s3://bucket")
    return lake.netloc


def s3_client():
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                        region_name=os.environ.get("AWS_REGION") or None,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def retrying(what: str, action):
    last = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - any failure is retried, the last one reported
            last = exc
            print(f"{what}: attempt {attempt}/{ATTEMPTS} failed: {exc}", flush=True)
            if attempt < ATTEMPTS:
                time.sleep(PAUSE_SECONDS)
    raise SystemExit(f"error: {what} failed after {ATTEMPTS} attempts: {last}")


def create_bucket(client, name: str) -> str:
    """Create the bucket in the client's region. S3 outside us-east-1 requires that region as the location
    constraint (IllegalLocationConstraintException without it) and refuses it for us-east-1. The History
    Server's init container runs this task beside the hook, so the other may have just made the bucket."""
    from botocore.exceptions import ClientError

    region = client.meta.region_name
    where = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        client.create_bucket(Bucket=name, **where)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        return "exists"
    return "created"


def bucket_init() -> None:
    from botocore.exceptions import ClientError

    name = bucket()

    def run() -> str:
        client = s3_client()
        try:
            client.head_bucket(Bucket=name)
            made = "exists"
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            made = create_bucket(client, name)
        try:
            client.head_object(Bucket=name, Key=EVENTS_MARKER)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            client.put_object(Bucket=name, Key=EVENTS_MARKER, Body=b"")
        return made

    made = retrying(f"bucket-init s3://{name}", run)
    print(f"bucket s3://{name} {made}; s3://{name}/{EVENTS_MARKER} present")


def identities(environ: dict[str, str], writes: dict[str, list[str]]) -> dict:
    """SeaweedFS's -s3.config: the admin identity may do anything; each component's may read and list the
    bucket and write (put, copy, delete) only under its prefixes of the lake. Reads stay bucket-wide: the
    clients probe the bucket (HeadBucket) and parent keys, which prefix-scoped reads would refuse. Keys come
    from S3_IDENTITY_<ROLE>_AWS_ACCESS_KEY_ID / _AWS_SECRET_ACCESS_KEY."""
    lake = urlsplit(environ["LAKE_URI"])
    root = f"{lake.netloc}{lake.path}".rstrip("/")
    out, owners = [], {}
    for role in [ADMIN, *writes]:
        names = [f"S3_IDENTITY_{role.upper()}_AWS_{part}" for part in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")]
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise SystemExit(f"error: {', '.join(missing)} not set: the {role} Secret lacks AWS_ACCESS_KEY_ID or "
                             "AWS_SECRET_ACCESS_KEY")
        access_key, secret_key = (environ[name] for name in names)
        if access_key in owners:  # the store would take one for the other
            raise SystemExit(f"error: the {owners[access_key]} and {role} Secrets hold the same AWS_ACCESS_KEY_ID: "
                             "give each component an identity of its own")
        owners[access_key] = role
        actions = ["Admin"] if role == ADMIN else [f"Read:{lake.netloc}", f"List:{lake.netloc}", *(
            f"Write:{root}/{prefix}/*" for prefix in writes[role])]
        out.append({"name": role, "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": actions})
    return {"identities": out}


def s3_config(path: str) -> None:
    with open(WRITES_FILE) as handle:
        writes = json.load(handle)
    config = identities(dict(os.environ), writes)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds every secret key
    with os.fdopen(descriptor, "w") as handle:
        json.dump(config, handle)
    print(f"{path}: S3 identities " + "; ".join(
        f"{i['name']} ({', '.join(i['actions'])})" for i in config["identities"]))


def check_s3() -> None:
    name = bucket()

    def run() -> None:
        client = s3_client()
        client.head_bucket(Bucket=name)
        client.get_object(Bucket=name, Key=EVENTS_MARKER)["Body"].read()

    retrying(f"check s3://{name}", run)
    print(f"ok: s3://{name} answers and s3://{name}/{EVENTS_MARKER} is readable")


def check_postgresql() -> None:
    import sqlalchemy

    def run() -> str:
        engine = sqlalchemy.create_engine(os.environ["WAREHOUSE_URL"], pool_pre_ping=True)
        try:
            with engine.connect() as connection:
                return connection.execute(sqlalchemy.text("SELECT version()")).scalar_one()
        finally:
            engine.dispose()

    version = retrying("check PostgreSQL (WAREHOUSE_URL)", run)
    print(f"ok: the warehouse answers: {version}")


def check_history(url: str) -> None:
    def run() -> str:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/version", timeout=10) as response:
            return json.load(response)["spark"]

    version = retrying(f"check the Spark History Server at {url}", run)
    print(f"ok: the Spark History Server {version} answers at {url}")


def main(argv: list[str]) -> None:
    tasks = {"bucket-init": bucket_init, "check-s3": check_s3, "check-postgresql": check_postgresql}
    if len(argv) == 2 and argv[0] == "check-history":
        check_history(argv[1])
    elif len(argv) == 2 and argv[0] == "s3-config":
        s3_config(argv[1])
    elif len(argv) == 1 and argv[0] in tasks:
        tasks[argv[0]]()
    else:
        raise SystemExit(f"usage: chart_tasks.py {'|'.join(tasks)}|check-history URL|s3-config FILE")


if __name__ == "__main__":
    main(sys.argv[1:])
