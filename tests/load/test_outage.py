"""Which failures a load waits out (server_gone) and for how long (Outage), on real errors: a closed port, a
wrong password, SQL errors, a session the server ends, from psycopg2 and from Spark's JDBC writer. The whole
load riding out a PostgreSQL restart is tests/reliability/test_warehouse_outage.py."""

from __future__ import annotations

import socket
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cryptolake.errors import CryptolakeError
from cryptolake.spark_apps.load.loader import Outage, server_gone


def closed_port_url(stack_env) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return make_url(stack_env["WAREHOUSE_URL"]).set(port=port).render_as_string(hide_password=False)


def error_of(url: str, sql: str = "SELECT 1") -> Exception:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    except Exception as exc:  # noqa: BLE001 - the error is what is examined
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} did not fail")


def test_an_unreachable_server_is_an_outage_and_sql_errors_are_not(stack_env):
    url = stack_env["WAREHOUSE_URL"]
    wrong_password = make_url(url).set(password="not-the-password").render_as_string(hide_password=False)
    assert server_gone(error_of(closed_port_url(stack_env)))
    assert not server_gone(error_of(wrong_password))
    assert not server_gone(error_of(url, "SELECT * FROM no_such_table"))
    assert not server_gone(error_of(url, "SELEKT 1"))
    assert not server_gone(error_of(url, "SELECT 1/0"))


def test_a_session_the_server_ends_is_an_outage(stack_env):
    """What a fast shutdown does to every session: terminating connection due to administrator command."""
    engine = create_engine(stack_env["WAREHOUSE_URL"])
    with engine.connect() as victim, engine.connect() as admin:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar()
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception) as raised:
            victim.execute(text("SELECT 1"))
    engine.dispose()
    assert server_gone(raised.value)


def test_an_outage_is_retried_within_its_bound_and_then_is_one_clear_error(stack_env):
    url, tries = closed_port_url(stack_env), []

    def unreachable():
        tries.append(time.monotonic())
        raise error_of(url)

    outage = Outage(3)
    with pytest.raises(CryptolakeError, match=r"cannot reach the warehouse for t1: still unreachable after 3 s "
                                              r"\(LOAD_OUTAGE_WAIT_SECONDS\): .*Connection refused") as raised:
        outage.attempt("t1", unreachable)
    assert len(tries) >= 2 and tries[-1] - tries[0] >= 3 and "\n" not in str(raised.value)
    # the next table of the same load does not wait the bound again while the server is still gone
    tries.clear()
    with pytest.raises(CryptolakeError, match="still unreachable"):
        outage.attempt("t2", unreachable)
    assert len(tries) == 1


def test_a_sql_error_is_not_retried_and_a_reachable_server_ends_the_outage(stack_env):
    outage, tries = Outage(60), []

    def bad_sql():
        tries.append(1)
        raise error_of(stack_env["WAREHOUSE_URL"], "SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="no_such_table"):
        outage.attempt("t", bad_sql)
    assert tries == [1]
    flaky = iter([error_of(closed_port_url(stack_env)), None])

    def back_after_one_failure():
        error = next(flaky)
        if error:
            raise error
        return "loaded"

    assert outage.attempt("t", back_after_one_failure) == "loaded" and outage.since is None


@pytest.mark.spark
def test_spark_jdbc_errors_are_told_apart_the_same_way(spark, stack_env):
    url = make_url(stack_env["WAREHOUSE_URL"])

    def write_error(jdbc_url: str, table: str, password: str) -> Exception:
        with pytest.raises(Exception) as raised:
            (spark.range(3).write.format("jdbc").mode("append").option("url", jdbc_url).option("dbtable", table)
             .option("driver", "org.postgresql.Driver").option("user", url.username).option("password", password)
             .save())
        return raised.value

    closed = make_url(closed_port_url(stack_env))
    assert server_gone(write_error(f"jdbc:postgresql://127.0.0.1:{closed.port}/{url.database}", "t", url.password))
    reachable = f"jdbc:postgresql://{url.host}:{url.port}/{url.database}"
    assert not server_gone(write_error(reachable, "t", "not-the-password"))
    assert not server_gone(write_error(reachable, "no_such_schema.t", url.password))
