"""Spark's own History Server over a lake's event logs (`<LAKE_URI>/spark-events`), from the installed pyspark.

It reads the same directory the Spark apps write to (spark_apps/session.py's `spark.eventLog.dir`) with the
same S3A settings and Maven-resolved jars. The S3 credentials reach its JVM as AWS_* environment variables
(S3A's default provider chain reads them), never on its command line, which `ps` shows to every user. The
properties file holds no secret but is private anyway, like the rest of the state directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptolake.errors import LocalStackError
from cryptolake.lake import SPARK_EVENTS, Lake
from cryptolake.local.process import Daemon, http_ok, refuse_taken_port, wait_until
from cryptolake.settings import Settings

MAIN_CLASS = "org.apache.spark.deploy.history.HistoryServer"
UPDATE_INTERVAL = "2s"  # how often it scans for new event logs (Spark's default is 10s)
DAEMON_MEMORY = "512m"  # a laptop's handful of applications; Spark's default is 1g
READY_TIMEOUT = 120     # a JVM start on a busy two-core machine


def spark_home() -> Path:
    """The pip-installed pyspark package is a complete Spark distribution (bin/, jars/)."""
    try:
        import pyspark
    except ImportError as exc:
        raise LocalStackError("pyspark is not installed, so the Spark History Server cannot start",
                              "Install it: pip install 'cryptolakehouse[spark]' (make setup does)") from exc
    return Path(pyspark.__file__).parent


class HistoryServer:
    """One History Server instance: its files under `state_dir/history`, its UI and REST API on loopback."""

    def __init__(self, state_dir: Path, port: int, lake_env: dict[str, str]):
        """`lake_env` names the lake and its S3 store (LAKE_URI, AWS_*), as `LocalStack.env()` does."""
        self.port = port
        self.lake_env = lake_env
        self.home = state_dir / "history"
        self.properties = self.home / "spark-history.conf"
        self.log_file = state_dir / "logs" / "history.log"
        self.daemon = Daemon("history", state_dir / "history.pid", marker=str(self.properties))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.daemon.running()

    def up(self) -> None:
        if not self.running():
            refuse_taken_port(self.port, "the Spark History Server", "--history-port")
            settings = Settings.load(env={**os.environ, **self.lake_env})
            self._write_properties(settings)
            env = self._env(settings)
            home = spark_home()
            self.daemon.start([str(home / "bin" / "spark-class"), MAIN_CLASS, "--properties-file",
                               str(self.properties)], self.log_file, env={**env, "SPARK_HOME": str(home)})
        wait_until(self.healthy, READY_TIMEOUT, "the Spark History Server", self.log_file)

    def down(self) -> bool:
        return self.daemon.stop()

    def healthy(self) -> bool:
        """Its REST API answers (the UI port opens before the first scan of the log directory)."""
        return http_ok(f"{self.url}/api/v1/applications?limit=1")

    def _write_properties(self, settings: Settings) -> None:
        """Log directory and S3A settings exactly as the apps get them, so it reads what they write."""
        from cryptolake.spark_apps.session import lake_conf

        lake = Lake.from_settings(settings)
        lake.ensure_dir(SPARK_EVENTS)  # the History Server refuses a missing log directory
        conf = lake_conf(settings, lake)
        props = {key: value for key, value in conf.items() if key.startswith("spark.hadoop.")}
        props.update({
            "spark.history.fs.logDirectory": conf["spark.eventLog.dir"],
            "spark.history.ui.port": str(self.port),
            "spark.history.fs.update.interval": UPDATE_INTERVAL,
        })
        self.home.mkdir(parents=True, exist_ok=True)
        self.properties.touch(mode=0o600)
        self.properties.write_text("".join(f"{key}={value}\n" for key, value in props.items()))

    def _env(self, settings: Settings) -> dict[str, str]:
        from cryptolake.spark_apps.session import local_jars

        aws = {key: value for key, value in settings.as_env().items() if key.startswith("AWS_")}
        return {
            **os.environ, **aws,
            "SPARK_DAEMON_CLASSPATH": os.pathsep.join(local_jars(settings)),  # hadoop-aws + the AWS SDK
            "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
            "SPARK_CONF_DIR": str(self.home),  # no stray spark-defaults.conf
            "SPARK_LOCAL_IP": "127.0.0.1",     # its UI binds to this address (all interfaces otherwise)
        }
