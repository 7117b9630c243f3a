"""Turning a validated config into destination jobs, and deciding what is already in place.

Pure: no network. The sync engine asks registries (HEADs, destination GETs) and
hands the answers to :func:`is_unchanged`, which decides whether an entry can be
skipped without ever GETting the source manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from docker_transfer.config import AttestationMode, Config, ImageEntry
from docker_transfer.errors import UsageError
from docker_transfer.manifest import (
    ABSENT_PLATFORMS_ANNOTATION,
    DROPPED_ARTIFACTS_ANNOTATION,
    SOURCE_DIGEST_ANNOTATION,
    Manifest,
)
from docker_transfer.platform import Platform, is_unknown
from docker_transfer.reference import Reference, validate_repository
from docker_transfer.tagrules import expand


@dataclass(frozen=True)
class Target:
    """Where images go: ``{registry}/{namespace}/{target}:{tag}``."""

    registry: str
    namespace: str

    def __post_init__(self) -> None:
        if not self.registry:
            raise UsageError("no target registry: pass --target-registry or set TARGET_REGISTRY")
        if not self.namespace:
            raise UsageError(
                "no target namespace: pass --target-namespace or set TARGET_NAMESPACE (or ALIYUN_NAMESPACE)"
            )
        validate_repository(self.namespace)

    @property
    def label(self) -> str:
        """``registry/namespace``: how reports name this destination."""
        return f"{self.registry}/{self.namespace}"


@dataclass(frozen=True)
class Job:
    """One config entry bound to its destination repository."""

    entry: ImageEntry
    destination: Reference
    tags: tuple[str, ...]
    arch_tags: tuple[tuple[str, Platform], ...]
    where: str = ""
    """The destination as reports name it (``registry/namespace``, or ``oci:DIR``)."""

    @property
    def platforms(self) -> tuple[Platform, ...] | None:
        """The requested platforms (``None`` would mean all; the seed format always names them)."""
        return self.entry.platforms or None

    @property
    def all_tags(self) -> tuple[str, ...]:
        """Index tags then per-architecture tags."""
        return self.tags + tuple(tag for tag, _ in self.arch_tags)

    @property
    def has_rules(self) -> bool:
        """True for a job whose tags come from rules: :func:`expand_job` turns it into real jobs."""
        return bool(self.entry.rules)

    @property
    def rules_text(self) -> str:
        """The job's rules as written, for messages and for the result row of a failed listing."""
        return " ".join(rule.text for rule in self.entry.rules)


def plan_jobs(config: Config, target: Target) -> list[Job]:
    """Jobs per entry, destination ``{registry}/{namespace}/{target}``.

    An entry's listed tags make one job; its tag rules make another, which
    :func:`expand_job` replaces by one job per chosen tag once the source's tag
    list is known.
    """
    jobs: list[Job] = []
    for entry in config.entries:
        repository = validate_repository(f"{target.namespace}/{entry.target}")
        if entry.tags:
            listed = replace(entry, rules=(), exclude=())
            destination = Reference(registry=target.registry, repository=repository, tag=entry.tags[0])
            jobs.append(Job(listed, destination, entry.tags, _arch_tags(listed, entry.tags), target.label))
        if entry.rules:
            destination = Reference(registry=target.registry, repository=repository)
            jobs.append(Job(entry, destination, (), (), target.label))
    return jobs


def expand_job(job: Job, available: Iterable[str], taken: set[tuple[str, str]]) -> list[Job]:
    """One job per tag that ``job``'s rules choose from ``available`` (the source's tags).

    Each copies ``source:TAG`` to ``target:TAG``. A destination tag in ``taken``
    (written by a listed tag or an earlier entry) is left to its first writer;
    the tags used are added to ``taken``.
    """
    entry = job.entry
    jobs: list[Job] = []
    for tag, rule in expand(entry.rules, entry.exclude, available).items():
        key = (job.destination.name, tag)
        if key in taken:
            continue
        taken.add(key)
        source = entry.source.with_tag(tag)
        chosen = replace(
            entry, source=source, source_text=str(source), tags=(tag,), rules=(), exclude=(), rule=rule.text
        )
        jobs.append(Job(chosen, job.destination.with_tag(tag), (tag,), _arch_tags(chosen, (tag,)), job.where))
    return jobs


def _arch_tags(entry: ImageEntry, tags: Sequence[str]) -> tuple[tuple[str, Platform], ...]:
    if not entry.arch_tags:
        return ()
    return tuple((f"{tag}-{platform.tag_suffix}", platform) for tag in tags for platform in entry.platforms)


def platforms_match(wanted: Sequence[Platform], present: Sequence[Platform]) -> bool:
    """Each wanted platform is present, and nothing else is."""
    present = [p for p in present if not is_unknown(p)]
    return all(any(w.matches(p) for p in present) for w in wanted) and all(
        any(w.matches(p) for w in wanted) for p in present
    )


def child_for(index: Manifest, platform: Platform) -> str | None:
    """Digest of the first non-attestation child of ``index`` matching ``platform``."""
    for child in index.manifests:
        if child.platform is not None and not child.is_attestation and platform.matches(child.platform):
            return child.digest
    return None


def absent_from_source(destination: Manifest, source_digest: str) -> set[str]:
    """Requested platforms (normalised names) the source index did not list when ``destination`` was made.

    A destination holding the source bytes lists exactly what the source
    lists, so nothing it lacks needs recording; a filtered index names them in
    :data:`ABSENT_PLATFORMS_ANNOTATION`.
    """
    if destination.digest == source_digest:
        return set()
    raw = destination.annotations.get(ABSENT_PLATFORMS_ANNOTATION, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def skipped_platforms(wanted: Sequence[Platform] | None, destination: Manifest | None) -> list[Platform]:
    """The wanted platforms that an index at the destination does not hold (``allow_partial``)."""
    if not wanted or destination is None or not destination.is_index:
        return []
    present = [c.platform for c in destination.manifests if c.platform and not c.is_attestation]
    return [w for w in wanted if not any(w.matches(p) for p in present)]


def is_unchanged(
    source_digest: str,
    wanted: Sequence[Platform] | None,
    tag_digests: Mapping[str, str | None],
    destination: Manifest | None,
    arch_tag_digests: Mapping[str, tuple[Platform, str | None]] | None = None,
    *,
    partial_ok: bool = False,
    attestations: AttestationMode = "auto",
    image_platform: Platform | None = None,
) -> bool:
    """True when every destination tag already holds what a copy of ``source_digest`` would push.

    ``tag_digests`` are the destination HEAD digests of the index tags and
    ``destination`` the manifest they point at (fetched from the destination,
    never the source). A copy of every platform pushes the source bytes, so
    equal digests prove it; a filtered copy is recognised by the source digest
    recorded in its annotations. Either way the destination must hold exactly
    the wanted platforms, since the user may have changed ``architectures``.
    With ``partial_ok`` (``allow_partial``) a wanted platform may be missing
    only if the source did not list it (see :func:`absent_from_source`): a
    platform lost to a failed copy is never taken as done.

    ``attestations`` is the entry's mode: ``drop`` refuses a destination that
    holds attestation or artifact entries, ``keep`` one published without
    them; ``auto`` accepts both. ``image_platform`` is the platform of a
    single-image destination (from its config), when known.
    """
    digests = set(tag_digests.values())
    if not tag_digests or None in digests or len(digests) != 1:
        return False
    (pushed,) = digests
    if destination is None or destination.digest != pushed:
        return False
    annotations = destination.annotations
    filtered = pushed != source_digest and annotations.get(SOURCE_DIGEST_ANNOTATION) == source_digest
    if pushed != source_digest and not filtered:
        return False
    # Every platform wanted and nothing dropped means the source bytes; a filtered copy is not that.
    if filtered and wanted is None and DROPPED_ARTIFACTS_ANNOTATION not in annotations:
        return False
    if destination.is_index and not _artifacts_as_wanted(destination, attestations):
        return False
    if destination.is_index and wanted is not None:
        present = [c.platform for c in destination.manifests if c.platform and not c.is_attestation]
        if partial_ok:
            absent = absent_from_source(destination, source_digest)
            if not present or not all(
                any(w.matches(p) for w in wanted) for p in present if not is_unknown(p)
            ):
                return False
            # The source bytes themselves list all the source lists; a filtered index names what it lacked.
            listed = [w for w in wanted if pushed != source_digest and str(w.normalized) not in absent]
            if not all(any(w.matches(p) for p in present) for w in listed):
                return False
        elif not platforms_match(wanted, present):
            return False
    if not destination.is_index and wanted and image_platform is not None:
        matching = [w for w in wanted if w.matches(image_platform)]
        if not matching or (not partial_ok and len(matching) != len(wanted)):
            return False
    for platform, digest in (arch_tag_digests or {}).values():
        if destination.is_index:
            expected = child_for(destination, platform)
        elif image_platform is None or platform.matches(image_platform):
            expected = pushed
        else:
            expected = None
        if expected is None and partial_ok:
            continue  # that platform was not published, so neither was its tag
        if digest is None or digest != expected:
            return False
    return True


def _artifacts_as_wanted(index: Manifest, mode: AttestationMode) -> bool:
    if mode == "drop":
        return not any(c.is_artifact for c in index.manifests)
    if mode == "keep":
        return DROPPED_ARTIFACTS_ANNOTATION not in index.annotations
    return True
