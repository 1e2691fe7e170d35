"""`cryptolake migrate`: Alembic configured in code, so it runs the same from a checkout and an installed wheel."""

from __future__ import annotations

import logging
from importlib.resources import files

logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # else an INFO line per built-in plugin

from alembic import command  # noqa: E402 (after quieting its plugin registry)
from alembic.config import Config  # noqa: E402
from alembic.util import CommandError  # noqa: E402
from psycopg2.extensions import encrypt_password  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from cryptolake import logs
from cryptolake.errors import CryptolakeError
from cryptolake.settings import Settings
from cryptolake.warehouse.models import SCHEMAS, Base

VERSION_SCHEMA, VERSION_TABLE = "meta", "alembic_version"
# Login users `cryptolake migrate` keeps, by group role, with the setting holding the password.
LOGIN_USERS = {"cryptolake_loader": ("cryptolake_loader_user", "warehouse_loader_password"),
               "cryptolake_backup": ("cryptolake_backup_user", "warehouse_backup_password"),
               "cryptolake_analyst": ("cryptolake_analyst_user", "warehouse_analyst_password")}

log = logs.get(__name__)


def comparison_options() -> dict:
    """What autogenerate compares: the models against the warehouse schemas, the version table left out."""

    def include_name(name, type_, parent_names) -> bool:
        if type_ == "schema":
            return name in SCHEMAS
        return not (type_ == "table" and name == VERSION_TABLE)

    return {"target_metadata": Base.metadata, "include_schemas": True, "include_name": include_name,
            "compare_type": True}


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("cryptolake.migrations")))
    return config


def engine_for(url: str) -> Engine:
    logs.register_secret(url)
    return create_engine(url, pool_pre_ping=True)


def _run(engine: Engine, action, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to `revision`; at that revision already, nothing changes."""
    log.info("migrating %s to %s", engine.url.render_as_string(hide_password=True), revision)
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade to `revision` (`base` removes every table and view; roles stay, they are cluster-wide)."""
    log.info("downgrading %s to %s", engine.url.render_as_string(hide_password=True), revision)
    _run(engine, command.downgrade, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE,
                                                            "version_table_schema": VERSION_SCHEMA}
                                          ).get_current_revision()


def set_login_user(engine: Engine, group: str, password: str) -> str:
    """Create the group's login user if missing and set its password; the server sees only a SCRAM verifier."""
    user = LOGIN_USERS[group][0]
    with engine.begin() as connection:
        verifier = encrypt_password(password, user, connection.connection.dbapi_connection, "scram-sha-256")
        quote = connection.dialect.identifier_preparer.quote  # identifiers quoted by SQLAlchemy, values bound
        if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :user"), {"user": user}).first() is None:
            connection.execute(text(f"CREATE ROLE {quote(user)} LOGIN"))
        connection.execute(text(f"ALTER ROLE {quote(user)} LOGIN PASSWORD :verifier"), {"verifier": verifier})
        connection.execute(text(f"GRANT {quote(group)} TO {quote(user)}"))
    return user


def migrate(settings: Settings, downgrade_to: str | None = None) -> list[str]:
    """`cryptolake migrate`: upgrade to head (or downgrade), then the login users whose passwords are set.

    Returns the lines to print. Connection problems and unknown revisions become one clear error.
    """
    engine = engine_for(settings.require("warehouse_url", 'Set it, or eval "$(cryptolake local env)" for the '
                                                          "local stack"))
    try:
        if downgrade_to:
            downgrade(engine, downgrade_to)
            return [f"warehouse at revision {current(engine) or 'base'}"]
        upgrade(engine)
        users = [set_login_user(engine, group, getattr(settings, field))
                 for group, (_, field) in LOGIN_USERS.items() if getattr(settings, field)]
        return [f"warehouse at revision {current(engine)} (head)"] + [f"login user {u} set" for u in users]
    except OperationalError as exc:
        raise CryptolakeError(f"cannot reach the warehouse: {str(exc.orig).strip().splitlines()[0]}",
                              "Check WAREHOUSE_URL and that PostgreSQL is up (cryptolake local up)") from exc
    except CommandError as exc:
        raise CryptolakeError(f"cannot migrate: {exc}", "Give base, head or a revision id of migrations/versions")
    finally:
        engine.dispose()
