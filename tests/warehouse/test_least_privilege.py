"""Least privilege beyond the grants of test_roles.py: no login user holds a cluster privilege, can take on
another role, manage roles or databases, reshape the schema, or read what bears secrets (password hashes,
the run ledger's mirror and rejected rows for the analyst)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.warehouse.test_roles import analyst, backup, loader  # noqa: F401 - the login users' fixtures

USERS = ("cryptolake_loader", "cryptolake_analyst", "cryptolake_backup")


@pytest.fixture(scope="module")
def users(analyst, loader, backup):
    return {"cryptolake_analyst": analyst, "cryptolake_loader": loader, "cryptolake_backup": backup}


def _refused(engine, sql: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection, \
            pytest.raises(DBAPIError) as err:  # autocommit: CREATE DATABASE refuses to run in a transaction
        connection.execute(text(sql))
    assert err.value.orig.pgcode == "42501", err.value.orig  # insufficient_privilege, not some other failure


@pytest.mark.parametrize("group", USERS)
def test_login_users_hold_no_cluster_privilege(users, group):
    with users[group].connect() as connection:
        row = connection.execute(text(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user")).one()
        member_of = set(connection.execute(text(
            "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user")).scalars())
    assert tuple(row) == (False, False, False, False, False)
    assert member_of == {group}  # its group only: no admin, no pg_* predefined role


SECRET_BEARING = {
    "password hashes": "SELECT rolpassword FROM pg_authid",
    "another user's password hash": "SELECT passwd FROM pg_shadow",
}
DDL = {
    "CREATE ROLE": "CREATE ROLE intruder LOGIN PASSWORD 'x'",
    "ALTER ROLE": "ALTER ROLE cryptolake_admin LOGIN",
    "GRANT admin to self": "GRANT cryptolake_admin TO current_user",
    "SET ROLE admin": "SET ROLE cryptolake_admin",
    "CREATE DATABASE": "CREATE DATABASE intruder",
    "CREATE SCHEMA": "CREATE SCHEMA intruder",
    "CREATE in public": "CREATE TABLE public.intruder (x int)",
    "ALTER dw table": "ALTER TABLE dw.fact_crypto_market ADD COLUMN intruder int",
    "CREATE FUNCTION dw": "CREATE FUNCTION dw.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "COPY to a server file": "COPY (SELECT 1) TO '/tmp/cryptolake-intruder'",
    "read a server file": "SELECT pg_read_file('/etc/passwd')",
}


@pytest.mark.parametrize("group", USERS)
@pytest.mark.parametrize("what", [*SECRET_BEARING, *DDL])
def test_login_users_cannot_read_secrets_manage_roles_or_change_the_schema(users, group, what):
    _refused(users[group], SECRET_BEARING.get(what) or DDL[what])


@pytest.mark.parametrize("relation", ["meta.runs", "meta.rejected_rows", "meta.load_watermark"])
def test_the_analyst_cannot_read_the_ledger_mirror_or_rejected_payloads(analyst, relation):
    _refused(analyst, f"SELECT * FROM {relation} LIMIT 1")


def test_only_the_loader_creates_in_meta_for_its_staging_tables(loader, analyst):
    """By design (docs/warehouse.md: meta.load_stage_<table>): the loader's one CREATE is on meta."""
    with loader.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("CREATE UNLOGGED TABLE meta.load_stage_probe (x int)"))
        transaction.rollback()
    _refused(analyst, "CREATE TABLE meta.load_stage_probe (x int)")


def test_the_checks_can_fail_for_a_privileged_role(migrated):
    """The migrating (admin) connection does read pg_authid: the refusals above are the roles', not the server's."""
    with migrated.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM pg_authid")).scalar() > 0
