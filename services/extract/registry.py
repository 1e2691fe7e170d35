"""Every extractor by canonical name, and the jobs of each frequency group as the pipeline spec declares them."""

from cryptolake import pipeline
from cryptolake.pipeline import PARAMS, Pipeline, SpecError
from cryptolake.services.extract.base import Extractor
from cryptolake.services.extract.category import crypto_categories, crypto_category
from cryptolake.services.extract.crypto import crypto_info, crypto_listings_latest, crypto_map
from cryptolake.services.extract.exchange import exchange_assets, exchange_info, exchange_map
from cryptolake.services.extract.global_market import global_metrics_latest
from cryptolake.services.extract.key import key_info
from cryptolake.services.extract.runner import Job
from cryptolake.services.extract.sentiment import fear_greed_historical, fear_greed_latest

# Run order inside a group: key_info first (the governor reads it), maps before what reads their ids.
EXTRACTORS: dict[str, Extractor] = {e.name: e for e in (
    key_info, exchange_map, exchange_info, exchange_assets, crypto_map, crypto_info, crypto_listings_latest,
    crypto_categories, crypto_category, global_metrics_latest, fear_greed_latest, fear_greed_historical,
)}


def checked(spec: Pipeline) -> Pipeline:
    """The spec, once its extractors and their parameters are known to exist (SpecError names the field)."""
    for job in spec.jobs:
        where = f"extractors.{job.extractor}"
        extractor = EXTRACTORS.get(job.extractor)
        if extractor is None:
            raise SpecError(spec.source, where, f"unknown extractor; choose from {', '.join(EXTRACTORS)}")
        for param in job.params:
            if PARAMS[param] not in extractor.plan.settings_read:
                read = [p for p, s in PARAMS.items() if s in extractor.plan.settings_read]
                raise SpecError(spec.source, f"{where}.runs.{job.group}.params.{param}",
                                f"{job.extractor} does not read it; it reads {', '.join(read) or 'no parameter'}")
    missing = [name for name in EXTRACTORS if name not in spec.extractors]
    if missing:
        raise SpecError(spec.source, "extractors", f"{', '.join(missing)} not scheduled (every extractor runs in init)")
    return spec


def group(name: str, spec: Pipeline | None = None) -> list[Job]:
    """The group's jobs in run order (the registry's order, whatever the spec's)."""
    spec = checked(spec or pipeline.default())
    jobs = {j.extractor: j for j in spec.extract_jobs(name)}
    return [Job(e, jobs[e.name].priority, jobs[e.name].settings_overrides, jobs[e.name].group)
            for e in EXTRACTORS.values() if e.name in jobs]


def job(extractor: str, group_name: str | None = None, spec: Pipeline | None = None) -> Job:
    """One extractor: as the group runs it, or on its own (its spec priority, plain settings)."""
    spec = checked(spec or pipeline.default())
    if group_name is None:
        return Job(EXTRACTORS[extractor], next(j.priority for j in spec.jobs if j.extractor == extractor))
    found = next((j for j in group(group_name, spec) if j.extractor.name == extractor), None)
    if found is None:
        runs_in = [g for g in spec.groups_of(extractor) if g != "all"]
        raise ValueError(f"{extractor} does not run in group {group_name}; it runs in {', '.join(runs_in)}")
    return found
