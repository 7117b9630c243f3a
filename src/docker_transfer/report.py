"""The sync report: one result per destination tag, as JSON and as a table for people.

The JSON shape is a contract other tools read (``version`` 3)::

    {"version": 3, "started": ISO8601, "finished": ISO8601 | null,
     "results": [{"source", "target", "tag", "status", "digest", "platforms",
                  "bytes_copied", "duration_s", "error", "skipped", "warnings", "rule"?,
                  "destination"}],
     "summary": {"copied", "unchanged", "failed", "planned", "interrupted", "bytes_copied"},
     "warnings"?: [str],
     "config_errors"?: [{"file", "line", "message"}]}   (config_errors only when the run never started)

Version 2 added ``skipped`` (requested platforms the source does not list,
``allow_partial``; version 1 wrote them as an ``error`` note on a copied row),
``warnings`` per result and per run (tag rules that chose nothing), ``rule``
(present only on tags a tag rule chose), and the status ``interrupted``.
Version 3 added ``destination`` per result: the ``registry/namespace`` it was
mirrored to (``sync --target`` may name several), null when not known (rows read
from version 1 and 2 reports, ``oci:`` layout runs). Version 1 and 2 reports are
still read. Keys may be added in later versions of the same ``version``; none are removed.
This module only builds and renders reports; writing the file is the CLI's job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from docker_transfer.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError, UsageError

REPORT_VERSION = 3
"""The ``version`` written to report JSON."""
READ_VERSIONS = (1, 2, 3)
"""The versions :meth:`Report.from_dict` reads."""

Status = Literal["copied", "unchanged", "failed", "planned", "interrupted"]
"""``copied``: pushed now; ``unchanged``: already there with the same digest;
``failed``: see ``error``; ``planned``: a dry run would copy it; ``interrupted``: the run was
stopped (Ctrl-C, SIGTERM) before this tag was written, which a rerun finishes."""

OPTIONAL_STATUSES = ("planned", "interrupted")
"""Statuses shown in totals only when some result has them."""

STATUSES: tuple[Status, ...] = get_args(Status)

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_FULL_DIGEST = re.compile(r"\b(sha256:[0-9a-f]{12})[0-9a-f]{52}\b")
TABLE_WIDTH = 120
"""The widest a terminal's failure lines and error lines are wrapped to (at word boundaries)."""


def short_digests(text: str) -> str:
    """``sha256:`` + 64 hex shortened to 12 hex and an ellipsis, for people (JSON keeps them whole)."""
    return _FULL_DIGEST.sub(r"\1…", text)


# Where config.py puts the line in a problem: "… (line 7)", "… (lines 7 and 3)", "line 7, column 2: …".
_PROBLEM_LINE = re.compile(r"\(lines? (\d+)(?: and \d+)?\)$|^line (\d+), column \d+:")


@dataclass
class TagResult:
    """What happened to one destination tag."""

    source: str
    target: str
    tag: str
    status: Status
    digest: str | None = None
    platforms: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    duration_s: float = 0.0
    error: str | None = None
    skipped: list[str] = field(default_factory=list)
    """Requested platforms left out because the source does not list them (``allow_partial``)."""
    warnings: list[str] = field(default_factory=list)
    """What the copy left out or worked around, e.g. attestations the destination refused."""
    rule: str | None = None
    """The tag rule that chose this tag (``{"latest": 3}``), or None for a listed tag."""
    destination: str | None = None
    """The destination ``registry/namespace`` (None when unknown: older reports, OCI layouts)."""

    def __post_init__(self) -> None:
        # Literal is only checked statically; a typo here would corrupt every summary.
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        """The result as the report's JSON object."""
        return {
            "source": self.source,
            "target": self.target,
            "tag": self.tag,
            "status": self.status,
            "digest": self.digest,
            "platforms": list(self.platforms),
            "bytes_copied": self.bytes_copied,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
            **({"rule": self.rule} if self.rule is not None else {}),
            "destination": self.destination,
        }


@dataclass(frozen=True)
class ConfigProblem:
    """Why a run could not start: one problem of images.json (``file`` and ``line`` when known)."""

    message: str
    file: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON object for this problem."""
        return {"file": self.file, "line": self.line, "message": self.message}

    @classmethod
    def from_mapping(cls, raw: Any) -> ConfigProblem | None:
        """Read :meth:`to_dict` output; None for anything without a string ``message``."""
        if not isinstance(raw, Mapping) or not isinstance(raw.get("message"), str):
            return None
        file, line = raw.get("file"), raw.get("line")
        return cls(
            message=raw["message"],
            file=file if isinstance(file, str) else None,
            line=line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None,
        )


def config_problems(error: UsageError) -> list[ConfigProblem]:
    """The problems of a run refused before it started, each with its file and line when known."""
    if not isinstance(error, ConfigError):
        return [ConfigProblem(str(error))]
    problems: list[ConfigProblem] = []
    for text in error.problems:
        match = _PROBLEM_LINE.search(text)
        line = int(match.group(1) or match.group(2)) if match else None
        problems.append(ConfigProblem(text, error.path, line))
    return problems


@dataclass
class Report:
    """A sync run: when it started and finished and one :class:`TagResult` per destination tag.

    Use timezone-aware times (UTC): they are written with their offset, and
    :func:`merge_reports` cannot compare aware with naive ones.
    """

    started: datetime
    finished: datetime | None = None
    results: list[TagResult] = field(default_factory=list)
    ratelimit: list[dict[str, Any]] = field(default_factory=list)
    """Registry pull quotas seen during the run (``host``, ``limit``, ``remaining``, ``window_s``)."""
    warnings: list[str] = field(default_factory=list)
    """Things worth a look that failed nothing (tag rules that chose no tag)."""
    config_errors: list[ConfigProblem] = field(default_factory=list)
    """Why the run did not start (invalid images.json or settings); then there are no results."""

    def add(self, result: TagResult) -> None:
        """Append ``result``."""
        self.results.append(result)

    @property
    def failed(self) -> list[TagResult]:
        """Results whose status is ``failed``, in report order."""
        return [r for r in self.results if r.status == "failed"]

    def summary(self) -> dict[str, int]:
        """Counts per status plus total ``bytes_copied``."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for result in self.results:
            counts[result.status] += 1
        counts["bytes_copied"] = sum(r.bytes_copied for r in self.results)
        return counts

    @property
    def interrupted(self) -> list[TagResult]:
        """Results whose status is ``interrupted``, in report order."""
        return [r for r in self.results if r.status == "interrupted"]

    def exit_code(self) -> int:
        """0 when every tag is done, 1 when one failed or was interrupted, 2 for an invalid configuration."""
        if self.config_errors:
            return EXIT_USAGE
        return EXIT_FAILED if self.failed or self.interrupted else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """The report as its versioned JSON object."""
        return {
            "version": REPORT_VERSION,
            "started": _iso(self.started),
            "finished": None if self.finished is None else _iso(self.finished),
            "results": [r.to_dict() for r in self.results],
            "summary": self.summary(),
            **({"ratelimit": list(self.ratelimit)} if self.ratelimit else {}),
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            **({"config_errors": [p.to_dict() for p in self.config_errors]} if self.config_errors else {}),
        }

    def to_json(self) -> str:
        """The report as JSON text, indented by 2, with a trailing newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved file).

        ``summary`` is recomputed, not read; unknown keys are ignored so newer
        writers stay readable. Raises :class:`UsageError` listing every problem.
        """
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise UsageError(f"invalid report: expected a JSON object, got {type(data).__name__}")
        version = data.get("version")
        if version not in READ_VERSIONS or isinstance(version, bool):
            raise UsageError(
                f"invalid report: unsupported version {json.dumps(version)}; "
                f"this docker-transfer reads versions {', '.join(map(str, READ_VERSIONS))}"
            )
        started = _read_time(data.get("started"), "started", problems, required=True)
        finished = _read_time(data.get("finished"), "finished", problems, required=False)
        raw_results = data.get("results")
        results: list[TagResult] = []
        if not isinstance(raw_results, list):
            problems.append(f"results: expected a list, got {type(raw_results).__name__}")
        else:
            for i, raw in enumerate(raw_results):
                result = _read_result(raw, f"results[{i}]", problems)
                if result is not None:
                    results.append(result)
        if problems or started is None:
            raise UsageError("invalid report:\n" + "\n".join(f"  - {p}" for p in problems))
        raw_limits = data.get("ratelimit")
        if isinstance(raw_limits, Mapping):
            raw_limits = [raw_limits]
        limits: list[dict[str, Any]] = []
        if isinstance(raw_limits, list):
            limits = [dict(x) for x in raw_limits if isinstance(x, Mapping)]
        warnings = [w for w in data.get("warnings") or () if isinstance(w, str)]
        raw_problems = data.get("config_errors")
        read = map(ConfigProblem.from_mapping, raw_problems if isinstance(raw_problems, list) else [])
        config_errors = [problem for problem in read if problem is not None]
        return cls(
            started=started,
            finished=finished,
            results=results,
            ratelimit=limits,
            warnings=warnings,
            config_errors=config_errors,
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Parse report JSON text; see :meth:`from_dict`. Raises :class:`UsageError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"invalid report: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        return cls.from_dict(data)


def merge_reports(reports: Sequence[Report], order: Sequence[tuple[str, str]] = ()) -> Report:
    """Combine reports of several runs (e.g. CI shards) into one.

    ``started`` is the earliest, ``finished`` the latest known (None if none
    finished); results are concatenated and sorted by target then tag, keeping
    input order among equal keys. Raises :class:`ValueError` for no reports.

    ``order`` lists ``(target, tag)`` pairs as images.json has them (entries, then
    each entry's tags): results follow it instead, so a merged summary reads like the
    config. A pair's target matches the end of a result's ``registry/namespace/target``
    (the longest match wins); results it does not list come last, by target and tag.
    """
    if not reports:
        raise ValueError("merge_reports needs at least one report")
    finished = [r.finished for r in reports if r.finished is not None]
    results = [result for report in reports for result in report.results]
    positions: dict[tuple[str, str], int] = {}
    for position, pair in enumerate(order):
        positions.setdefault(pair, position)

    def key(result: TagResult) -> tuple[int, str, str]:
        parts = result.target.split("/")
        for start in range(len(parts)):
            position = positions.get(("/".join(parts[start:]), result.tag))
            if position is not None:
                return position, "", ""
        return len(positions), result.target, result.tag

    results.sort(key=key)
    return Report(
        started=min(r.started for r in reports),
        finished=max(finished) if finished else None,
        results=results,
        warnings=list(dict.fromkeys(w for report in reports for w in report.warnings)),
        # Every shard reads the same images.json, so each reports the same problems: keep one of each.
        config_errors=list(dict.fromkeys(p for r in reports for p in r.config_errors)),
    )


def human_size(n: int) -> str:
    """Bytes in decimal units with one decimal: ``0 B``, ``999 B``, ``1.2 kB``, ``3.4 MB``, ``1.0 GB``."""
    if n < 0:
        return "-" + human_size(-n)
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in _SIZE_UNITS[1:]:
        value /= 1000
        # Round before choosing the unit so 999_999 shows as 1.0 MB, not 1000.0 kB.
        if round(value, 1) < 1000 or unit == _SIZE_UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """Seconds for people: ``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _iso(moment: datetime) -> str:
    text = moment.isoformat()
    # 'Z' is the form most tools print for UTC; fromisoformat reads it back since 3.11.
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _read_time(value: Any, key: str, problems: list[str], *, required: bool) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        problems.append(f"{key}: expected an ISO 8601 time, got {json.dumps(value)}")
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"{key}: {value!r} is not an ISO 8601 time")
        return None


def _read_result(raw: Any, where: str, problems: list[str]) -> TagResult | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected an object, got {type(raw).__name__}")
        return None
    before = len(problems)
    for key in ("source", "target", "tag"):
        if not isinstance(raw.get(key), str):
            problems.append(f"{where}.{key}: expected a string, got {json.dumps(raw.get(key))}")
    if raw.get("status") not in STATUSES:
        problems.append(
            f"{where}.status: expected one of {', '.join(STATUSES)}, got {json.dumps(raw.get('status'))}"
        )
    for key in ("digest", "error", "rule", "destination"):
        if not isinstance(raw.get(key), str | None):
            problems.append(f"{where}.{key}: expected a string or null")
    lists: dict[str, list[str]] = {}
    for key in ("platforms", "skipped", "warnings"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            problems.append(f"{where}.{key}: expected a list of strings")
        else:
            lists[key] = list(value)
    bytes_copied = raw.get("bytes_copied", 0)
    if isinstance(bytes_copied, bool) or not isinstance(bytes_copied, int) or bytes_copied < 0:
        problems.append(f"{where}.bytes_copied: expected a non-negative integer")
    duration = raw.get("duration_s", 0.0)
    if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
        problems.append(f"{where}.duration_s: expected a non-negative number")
    if len(problems) > before:
        return None
    return TagResult(
        source=raw["source"],
        target=raw["target"],
        tag=raw["tag"],
        status=raw["status"],
        digest=raw.get("digest"),
        platforms=lists["platforms"],
        bytes_copied=bytes_copied,
        duration_s=float(duration),
        error=raw.get("error"),
        skipped=lists["skipped"],
        warnings=lists["warnings"],
        rule=raw.get("rule"),
        destination=raw.get("destination"),
    )
