"""The pipeline spec (pipeline.yaml): which job runs in which group, when, at what credit cost.

Everything that schedules or plans work reads it: `cryptolake extract --group`, `run`, `budget`, the DAGs and
the SparkApplication manifests rendered from it. Loading validates it whole and names the field at fault.
Extractor names and their parameters are checked against the registry by the extract layer (the core does
not know the extractors).
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from cryptolake.errors import CryptolakeError
from cryptolake.groups import GROUPS

SPEC_VERSION = 1
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # Python's weekday() order
DAY_SETS = {"weekdays": DAY_NAMES[:5], "every day": DAY_NAMES}
PRIORITIES = ("high", "low")
SPARK_APPS = ("transform", "load")
SECRET_ROLES = ("extract", *SPARK_APPS, "backup")  # the pipeline's pods, each reading its own Secret
# What Kubernetes and Spark accept, checked here so a typo fails `make generate`, not a pod at 3 a.m.
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # DNS-1123 label: namespaces, accounts, objects
K8S_QUANTITY = re.compile(r"\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?")  # cpu 250m, memory 256Mi
SPARK_SIZE = re.compile(r"\d+[kmgt]?", re.IGNORECASE)  # spark.driver.memory: 1g, 512m
# Job parameters and the setting each one overrides for that run (cryptolake/settings.py).
PARAMS = {"listings_limit": "cmc_listings_limit", "category_slice": "cmc_category_slice",
          "rescan_days": "cmc_rescan_days"}
SCHEDULED_GROUPS = tuple(g for g in GROUPS if g != "all")
TIMEOUT_KINDS = ("extract", "spark", "sql", "backup", "status")
# Notifier arguments that would hold a credential: those belong in an Airflow connection, never in the spec.
CREDENTIAL_ARG = re.compile(r"(^|_)(password|passwd|secret|token|api_?key|credentials?)($|_)", re.IGNORECASE)


class SpecError(CryptolakeError):
    def __init__(self, source: str, where: str, problem: str):
        self.where = where
        super().__init__(f"pipeline spec {source}: {where or 'the whole file'}: {problem}",
                         "Fix that field (docs/orchestration.md describes every field)")


@dataclass(frozen=True)
class Schedule:
    """Days of the week and UTC times of day; one cron expression, so every time shares its minute."""

    days: tuple[str, ...]
    at: tuple[time, ...]

    @property
    def cron(self) -> str:
        hours = ",".join(str(t.hour) for t in self.at)
        dow = "*" if len(self.days) == 7 else ",".join(str((DAY_NAMES.index(d) + 1) % 7) for d in self.days)
        return f"{self.at[0].minute} {hours} * * {dow}"

    @property
    def runs_per_week(self) -> int:
        return len(self.days) * len(self.at)

    def runs_in(self, year: int, month: int) -> int:
        days = calendar.monthrange(year, month)[1]
        return sum(len(self.at) for d in range(1, days + 1) if DAY_NAMES[date(year, month, d).weekday()] in self.days)


@dataclass(frozen=True)
class Group:
    name: str
    description: str
    schedule: Schedule | None  # None: on demand


@dataclass(frozen=True)
class ExtractJob:
    """One extractor in one group: its expected credits per run and the settings it overrides."""

    extractor: str
    group: str
    priority: str
    credits: int
    full_scan_credits: int | None = None  # a run that rescans every id (every `rescan_days`) costs this instead
    params: Mapping[str, int] = field(default_factory=dict)

    @property
    def settings_overrides(self) -> dict[str, int]:
        return {PARAMS[name]: value for name, value in self.params.items()}

    def runs_per_full_scan(self, schedule: Schedule) -> int:
        """Runs between two full rescans: the first run at least `rescan_days` after the last one rescans."""
        return max(1, math.ceil(self.params["rescan_days"] * schedule.runs_per_week / 7))


@dataclass(frozen=True)
class AlertPolicy:
    """Who hears about a failed DAG run or an unhealthy warehouse: an Airflow notifier class (dotted path) and
    its keyword arguments (templates over `alert.subject`, `alert.text`, `alert.html`); the `status` DAG's
    schedule."""

    notifier: str
    args: Mapping[str, Any]
    status_schedule: Schedule


@dataclass(frozen=True)
class AirflowPolicy:
    owner: str
    api_pool: str
    api_pool_slots: int
    retries: int
    retry_delay_minutes: int
    max_retry_delay_minutes: int
    timeout_minutes: Mapping[str, int]  # TIMEOUT_KINDS
    warehouse_conn_id: str
    alerts: AlertPolicy

    def step_timeout(self, step: str) -> timedelta:
        """The execution timeout of the task a step runs in (extract, transform, load, backup): the Spark
        apps' tasks share `spark`."""
        return timedelta(minutes=self.timeout_minutes["spark" if step in SPARK_APPS else step])


@dataclass(frozen=True)
class KubernetesPlacement:
    namespace: str
    images: Mapping[str, str]  # extract, spark
    config_map: str
    secrets: Mapping[str, str]  # SECRET_ROLES -> Secret name
    spark_service_account: str
    extract_resources: Mapping[str, str]  # cpu, memory, memory_limit
    spark_driver: Mapping[str, Any]  # cores, core_request (the pod's CPU request), memory (heap), memory_overhead
    spark_executor: Mapping[str, Any]  # instances, cores, core_request, memory
    finished_retention_hours: int  # finished pods and SparkApplications are kept this long


@dataclass(frozen=True)
class Pipeline:
    source: str
    groups: Mapping[str, Group]
    jobs: tuple[ExtractJob, ...]
    spark_apps: tuple[str, ...]
    post_load_sql: tuple[str, ...]
    backup_schedule: Schedule
    airflow: AirflowPolicy
    kubernetes: KubernetesPlacement

    def extract_jobs(self, group: str) -> list[ExtractJob]:
        """The group's jobs in the spec's order (`all`: every extractor once, with its init parameters)."""
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUPS)}")
        return [j for j in self.jobs if j.group == ("init" if group == "all" else group)]

    def job(self, extractor: str, group: str) -> ExtractJob | None:
        return next((j for j in self.extract_jobs(group) if j.extractor == extractor), None)

    @property
    def extractors(self) -> list[str]:
        return list(dict.fromkeys(j.extractor for j in self.jobs))

    def groups_of(self, extractor: str) -> tuple[str, ...]:
        return tuple(g for g in GROUPS if g == "all" or any(j.extractor == extractor and j.group == g
                                                              for j in self.jobs))


# -- loading and validation ------------------------------------------------------------------------------------
DEFAULT_SPEC = "pipeline.yaml"


@lru_cache(maxsize=None)
def default() -> Pipeline:
    """The spec shipped in the package (images install it with the wheel)."""
    text = resources.files("cryptolake").joinpath(DEFAULT_SPEC).read_text()
    return parse(text, f"cryptolake/{DEFAULT_SPEC}")


def load(path: Path | None) -> Pipeline:
    if path is None:
        return default()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CryptolakeError(f"cannot read the pipeline spec {path}: {exc.strerror or exc}",
                              "Give the path of a pipeline.yaml") from None
    return parse(text, str(path))


def parse(text: str, source: str) -> Pipeline:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "the file"
        raise SpecError(source, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    return from_mapping(raw, source)


def from_mapping(raw: Any, source: str) -> Pipeline:
    """The spec from its parsed form (the DAG file embeds it as a literal: parsing it reads no file)."""
    return _Reader(source).pipeline(raw)


class _Reader:
    """Walks the raw YAML; every problem names the dotted path of its field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str) -> SpecError:
        return SpecError(self.source, where, problem)

    def mapping(self, value: Any, where: str, required: tuple[str, ...] = (), allowed: tuple[str, ...] = ()
                ) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        for key in required:
            if key not in value:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
        unknown = [k for k in value if str(k) not in (*required, *allowed)]
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}" if where else str(unknown[0]),
                            f"unknown field; expected one of {', '.join((*required, *allowed))}")
        return {str(k): v for k, v in value.items()}

    def count(self, value: Any, where: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(where, f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def pipeline(self, raw: Any) -> Pipeline:
        spec = self.mapping(raw, "", ("version", "groups", "spark_apps", "post_load_sql", "backup", "airflow",
                                      "kubernetes", "extractors"))
        if spec["version"] != SPEC_VERSION:
            raise self.fail("version", f"this release reads version {SPEC_VERSION}, got {spec['version']!r}")
        groups_raw = self.mapping(spec["groups"], "groups", required=SCHEDULED_GROUPS)
        groups = {name: self.group(name, groups_raw[name]) for name in SCHEDULED_GROUPS}
        if groups["init"].schedule is not None:
            raise self.fail("groups.init.schedule", "init runs on demand: set it to null")
        apps = spec["spark_apps"]
        if not isinstance(apps, list) or not apps:
            raise self.fail("spark_apps", f"expected a list of {', '.join(SPARK_APPS)}")
        for i, app in enumerate(apps):
            self.choice(app, f"spark_apps[{i}]", SPARK_APPS)
        sql = spec["post_load_sql"]
        if not isinstance(sql, list) or not all(isinstance(s, str) and s.strip() for s in sql):
            raise self.fail("post_load_sql", "expected a list of SQL statements")
        backup = self.mapping(spec["backup"], "backup", ("schedule",))
        backup_schedule = self.schedule(backup["schedule"], "backup.schedule")
        if backup_schedule is None:
            raise self.fail("backup.schedule", "backups need a schedule")
        jobs = tuple(self.jobs(spec["extractors"], groups))
        for name in SCHEDULED_GROUPS:
            if not any(j.group == name for j in jobs):
                raise self.fail(f"groups.{name}", "no extractor runs in this group")
        return Pipeline(self.source, groups, jobs, tuple(apps), tuple(s.strip() for s in sql), backup_schedule,
                        self.airflow(spec["airflow"]), self.kubernetes(spec["kubernetes"]))

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def matching(self, value: Any, where: str, pattern: re.Pattern, expected: str) -> str:
        text = self.text(value, where)
        if not pattern.fullmatch(text):
            raise self.fail(where, f"expected {expected}, got {text!r}")
        return text

    def texts(self, raw: Any, where: str, keys: tuple[str, ...]) -> dict[str, str]:
        spec = self.mapping(raw, where, keys)
        return {k: self.text(spec[k], f"{where}.{k}") for k in keys}

    def counts(self, raw: Any, where: str, keys: tuple[str, ...], minimum: int = 1) -> dict[str, int]:
        spec = self.mapping(raw, where, keys)
        return {k: self.count(spec[k], f"{where}.{k}", minimum) for k in keys}

    def airflow(self, raw: Any) -> AirflowPolicy:
        spec = self.mapping(raw, "airflow", ("owner", "api_pool", "retries", "retry_delay_minutes",
                                             "max_retry_delay_minutes", "timeout_minutes", "warehouse_conn_id",
                                             "alerts"))
        pool = self.mapping(spec["api_pool"], "airflow.api_pool", ("name", "slots"))
        return AirflowPolicy(
            self.text(spec["owner"], "airflow.owner"), self.text(pool["name"], "airflow.api_pool.name"),
            self.count(pool["slots"], "airflow.api_pool.slots", 1), self.count(spec["retries"], "airflow.retries"),
            self.count(spec["retry_delay_minutes"], "airflow.retry_delay_minutes", 1),
            self.count(spec["max_retry_delay_minutes"], "airflow.max_retry_delay_minutes", 1),
            self.counts(spec["timeout_minutes"], "airflow.timeout_minutes", TIMEOUT_KINDS),
            self.text(spec["warehouse_conn_id"], "airflow.warehouse_conn_id"), self.alerts(spec["alerts"]))

    def alerts(self, raw: Any) -> AlertPolicy:
        # The notifier is imported when the DAGs are built (the core does not import Airflow): here its shape.
        where = "airflow.alerts"
        spec = self.mapping(raw, where, ("notifier", "args", "status_schedule"))
        notifier = self.text(spec["notifier"], f"{where}.notifier")
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", notifier):
            raise self.fail(f"{where}.notifier", "expected the dotted path of an Airflow notifier class, such as "
                            f"airflow.providers.smtp.notifications.smtp.SmtpNotifier, got {notifier!r}")
        args = self.mapping(spec["args"], f"{where}.args", allowed=tuple(map(str, spec["args"]))
                            if isinstance(spec["args"], dict) else ())
        for key in args:
            if CREDENTIAL_ARG.search(key):
                raise self.fail(f"{where}.args.{key}", "a credential has no place in the spec: put it in the Airflow "
                                                      "connection the notifier reads (docs/orchestration.md, Alerts)")
        schedule = self.schedule(spec["status_schedule"], f"{where}.status_schedule")
        if schedule is None:
            raise self.fail(f"{where}.status_schedule", "the status check needs a schedule")
        return AlertPolicy(notifier, args, schedule)

    def kubernetes(self, raw: Any) -> KubernetesPlacement:
        where = "kubernetes"
        spec = self.mapping(raw, where, ("namespace", "images", "config_map", "secrets", "spark_service_account",
                                         "extract_resources", "spark_driver", "spark_executor",
                                         "finished_retention_hours"))
        driver = self.mapping(spec["spark_driver"], f"{where}.spark_driver",
                              ("cores", "core_request", "memory", "memory_overhead"))
        executor = self.mapping(spec["spark_executor"], f"{where}.spark_executor",
                                ("instances", "cores", "core_request", "memory"))
        resources = self.mapping(spec["extract_resources"], f"{where}.extract_resources",
                                 ("cpu", "memory", "memory_limit"))

        def name(key: str) -> str:
            return self.matching(spec[key], f"{where}.{key}", K8S_NAME, "a Kubernetes name (a-z, 0-9, -)")

        def spark_memory(part: Mapping[str, Any], key: str, size: str = "memory") -> str:
            return self.matching(part[size], f"{where}.{key}.{size}", SPARK_SIZE, "a Spark size such as 1g")

        def core_request(part: Mapping[str, Any], key: str) -> str:
            return self.matching(str(part["core_request"]), f"{where}.{key}.core_request", K8S_QUANTITY,
                                 "a Kubernetes CPU quantity such as 250m or 1")

        return KubernetesPlacement(
            name("namespace"),
            self.texts(spec["images"], f"{where}.images", ("extract", "spark")),
            name("config_map"), self.secrets(spec["secrets"], f"{where}.secrets"), name("spark_service_account"),
            {k: self.matching(resources[k], f"{where}.extract_resources.{k}", K8S_QUANTITY,
                              "a Kubernetes quantity such as 250m or 256Mi") for k in ("cpu", "memory", "memory_limit")},
            {"cores": self.count(driver["cores"], f"{where}.spark_driver.cores", 1),
             "core_request": core_request(driver, "spark_driver"),
             "memory": spark_memory(driver, "spark_driver"),
             "memory_overhead": spark_memory(driver, "spark_driver", "memory_overhead")},
            {"instances": self.count(executor["instances"], f"{where}.spark_executor.instances", 1),
             "cores": self.count(executor["cores"], f"{where}.spark_executor.cores", 1),
             "core_request": core_request(executor, "spark_executor"),
             "memory": spark_memory(executor, "spark_executor")},
            self.count(spec["finished_retention_hours"], f"{where}.finished_retention_hours", 1))

    def secrets(self, raw: Any, where: str) -> dict[str, str]:
        names = {role: self.matching(name, f"{where}.{role}", K8S_NAME, "a Kubernetes name (a-z, 0-9, -)")
                 for role, name in self.mapping(raw, where, SECRET_ROLES).items()}
        shared = sorted(role for role, name in names.items() if list(names.values()).count(name) > 1)
        if shared:  # one Secret would hand each of them the other's credentials
            raise self.fail(where, f"{' and '.join(shared)} share a Secret; give each component its own")
        return names

    def group(self, name: str, raw: Any) -> Group:
        where = f"groups.{name}"
        spec = self.mapping(raw, where, ("description", "schedule"))
        if not isinstance(spec["description"], str) or not spec["description"].strip():
            raise self.fail(f"{where}.description", "expected a sentence saying what the group refreshes")
        return Group(name, spec["description"].strip(), self.schedule(spec["schedule"], f"{where}.schedule"))

    def schedule(self, raw: Any, where: str) -> Schedule | None:
        if raw is None:
            return None
        spec = self.mapping(raw, where, ("days", "at"))
        days = spec["days"]
        if isinstance(days, str) and days in DAY_SETS:
            days = list(DAY_SETS[days])
        if not isinstance(days, list) or not days:
            raise self.fail(f"{where}.days", f"expected {' or '.join(DAY_SETS)} or a list of {', '.join(DAY_NAMES)}")
        for i, day in enumerate(days):
            self.choice(day, f"{where}.days[{i}]", DAY_NAMES)
        at = spec["at"]
        if not isinstance(at, list) or not at:
            raise self.fail(f"{where}.at", "expected a list of UTC times like \"08:20\"")
        times = []
        for i, text in enumerate(at):
            try:
                hour, minute = str(text).split(":")
                times.append(time(int(hour), int(minute)))
            except ValueError:
                raise self.fail(f"{where}.at[{i}]", f"expected HH:MM, got {text!r}") from None
        if len({t.minute for t in times}) > 1:
            raise self.fail(f"{where}.at", "every time of a group must share its minute (one cron expression)")
        if len(set(times)) < len(times) or times != sorted(times):
            raise self.fail(f"{where}.at", "times must be in order, each once")
        return Schedule(tuple(sorted(set(days), key=DAY_NAMES.index)), tuple(times))

    def jobs(self, raw: Any, groups: Mapping[str, Group]) -> Iterator[ExtractJob]:
        extractors = self.mapping(raw, "extractors", allowed=tuple(map(str, raw)) if isinstance(raw, dict) else ())
        if not extractors:
            raise self.fail("extractors", "no extractor listed")
        for name, value in extractors.items():
            where = f"extractors.{name}"
            spec = self.mapping(value, where, ("priority", "runs"))
            priority = self.choice(spec["priority"], f"{where}.priority", PRIORITIES)
            runs = self.mapping(spec["runs"], f"{where}.runs", allowed=SCHEDULED_GROUPS)
            if "init" not in runs:
                raise self.fail(f"{where}.runs.init", "missing: init runs every extractor once")
            for group, run in runs.items():
                yield self.job(name, group, priority, run, groups[group], f"{where}.runs.{group}")

    def job(self, name: str, group: str, priority: str, raw: Any, in_group: Group, where: str) -> ExtractJob:
        spec = self.mapping(raw, where, ("credits",), ("full_scan_credits", "params"))
        params = self.mapping(spec.get("params", {}), f"{where}.params", allowed=tuple(PARAMS))
        params = {k: self.count(v, f"{where}.params.{k}", 1) for k, v in params.items()}
        full = spec.get("full_scan_credits")
        if full is not None:
            self.count(full, f"{where}.full_scan_credits")
            if "rescan_days" not in params or in_group.schedule is None:
                raise self.fail(f"{where}.full_scan_credits",
                                "needs params.rescan_days and a scheduled group (it prices the periodic rescans)")
        return ExtractJob(name, group, priority, self.count(spec["credits"], f"{where}.credits"), full, params)


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
