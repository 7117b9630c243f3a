"""Expanding tag rules: list each source's tags once, then one job per chosen tag.

The choosing is pure (:func:`docker_transfer.plan.expand_job`); this module only
lists tags (``GET /v2/<name>/tags/list``, which Docker Hub does not count as a
pull) and turns a listing that fails into that entry's failure, never the run's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from docker_transfer.errors import DockerTransferError
from docker_transfer.plan import Job, expand_job
from docker_transfer.registry.api import RegistryAPI
from docker_transfer.report import TagResult

LISTINGS_AT_ONCE = 8


@dataclass
class Expanded:
    """Jobs with every rule job replaced by its chosen tags, plus what went wrong."""

    jobs: list[Job] = field(default_factory=list)
    failures: list[TagResult] = field(default_factory=list)
    """One failed row per rule job whose source tags could not be listed."""
    warnings: list[str] = field(default_factory=list)
    """Rule jobs that chose no tag (not a failure: the entry has nothing to copy today)."""


async def expand_rule_jobs(client: RegistryAPI, jobs: Sequence[Job]) -> Expanded:
    """Replace each rule job by one job per chosen tag, keeping the config's order."""
    gate = asyncio.Semaphore(LISTINGS_AT_ONCE)

    async def listing(job: Job) -> list[str]:
        async with gate:
            return await client.list_tags(job.entry.source)

    sources = {job.entry.source.name: job for job in jobs if job.has_rules}
    names = list(sources)
    answers = await asyncio.gather(*(listing(sources[n]) for n in names), return_exceptions=True)
    listed = dict(zip(names, answers, strict=True))
    # Listed tags are claimed first: a rule never overwrites a tag an entry names outright.
    taken = {(job.destination.name, tag) for job in jobs if not job.has_rules for tag in job.all_tags}
    out = Expanded()
    for job in jobs:
        if not job.has_rules:
            out.jobs.append(job)
            continue
        answer = listed[job.entry.source.name]
        if isinstance(answer, BaseException):
            if not isinstance(answer, DockerTransferError):
                raise answer
            out.failures.append(_listing_failed(job, answer))
            continue
        chosen = expand_job(job, answer, taken)
        warning = (
            f"{job.entry.source.name}: tag rules {job.rules_text} chose none of its {len(answer)} tag(s)"
        )
        if not chosen and warning not in out.warnings:  # once, however many destinations
            out.warnings.append(warning)
        out.jobs.extend(chosen)
    return out


def _listing_failed(job: Job, error: DockerTransferError) -> TagResult:
    return TagResult(
        source=job.entry.source.name,
        target=job.destination.name,
        tag=job.rules_text,
        status="failed",
        platforms=[str(p) for p in job.entry.platforms],
        error=f"listing the source's tags failed: {error}",
        rule=job.rules_text,
        destination=job.where or None,
    )
