"""Shared CLI plumbing: transport options, the error boundary, output helpers."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
import stamina.instrumentation

from docker_transfer.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, DockerTransferError, UsageError
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.credentials import Credential, CredentialStore
from docker_transfer.registry.retry import RetryPolicy
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.report import TABLE_WIDTH, short_digests

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("docker_transfer")


def transport_options(func: F) -> F:
    """Add ``--insecure-registry``, ``--ca-cert``, ``--read-timeout`` and ``-v`` to a command."""
    decorators = [
        click.option(
            "--insecure-registry",
            "insecure",
            multiple=True,
            metavar="HOST[:PORT]",
            help="Use plain HTTP or unverified TLS for this host (repeatable; env DT_INSECURE_REGISTRIES).",
        ),
        click.option(
            "--ca-cert",
            type=click.Path(dir_okay=False),
            default=None,
            help="Extra CA bundle (PEM) to trust, added to the system CAs.",
        ),
        click.option(
            "--read-timeout",
            type=float,
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="Seconds without data before a read is abandoned (then retried).",
        ),
        click.option("-v", "--verbose", count=True, help="More log output (-vv for HTTP requests)."),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def build_transport(insecure: Sequence[str], ca_cert: str | None, read_timeout: float) -> TransportOptions:
    """Transport options from CLI flags plus the environment."""
    return TransportOptions.create(insecure, ca_cert=ca_cert, read_timeout=read_timeout, use_env=True)


def build_client(
    transport: TransportOptions, explicit: dict[str, Credential] | None = None
) -> tuple[RegistryClient, CredentialStore]:
    """A registry client with Docker-config credentials (plus explicit ones).

    Its passwords and the bearer tokens it obtains are registered for redaction. The retry
    policy comes from the environment (``DT_RETRY_*``), and stamina's retry hooks are
    cleared: its default one logs a bare "stamina.retry_scheduled" warning, while our policy
    logs what failed and why. (The command line owns its process; a library user's hooks are
    never touched.)
    """
    stamina.instrumentation.set_on_retry_hooks([])
    store = CredentialStore(explicit)
    client = RegistryClient(transport, store, retry=RetryPolicy.from_env())
    register_secrets(store.secrets)
    register_secrets(client.auth.secrets)
    return client, store


class SecretFilter(logging.Filter):
    """Replace known secrets in log records, whatever the verbosity."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message, self._secrets())
        record.args = None
        return True


_SECRET_PATTERNS = (
    # Authorization header values, wherever a library might print them
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # userinfo in URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1***:***@"),
    # credentials and signatures in query strings (token realms, pre-signed storage URLs)
    (
        re.compile(
            r"(?i)([?&](?:access_token|refresh_token|token|password|secret|signature|sig|"
            r"x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature)=)[^&\s\"']+"
        ),
        r"\1***",
    ),
)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret (4+ characters), auth header, URL password and token query masked."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class _LevelPrefix(logging.Formatter):
    """``warning: message`` (the level in lower case, no time or logger name)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (it may be swapped, e.g. by tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbose: int) -> None:
    """Plain one-line logs on stderr; httpx request lines only at ``-vv``."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = _StderrHandler()
    if verbose <= 0:
        # Only warnings show by default: a plain "warning: ..." line, like click's "error: ...".
        handler.setFormatter(_LevelPrefix())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(SecretFilter(all_secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if verbose >= 3 else logging.INFO if verbose >= 2 else logging.WARNING
        )


_SECRETS: list[Callable[[], Iterable[str]]] = []


def register_secrets(source: Callable[[], Iterable[str]]) -> None:
    """Let the error boundary redact these secrets from any message it prints."""
    _SECRETS.append(source)


def all_secrets() -> list[str]:
    """Every secret registered so far (passwords, bearer tokens), for redaction."""
    found: list[str] = []
    for source in _SECRETS:
        found.extend(source())
    return found


def run_guarded(command: click.Command, args: list[str]) -> int:
    """Run a click command; map every expected failure to one line and an exit code."""
    try:
        result = command.main(args=args, prog_name="docker-transfer", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
    except DockerTransferError as exc:
        click.echo(error_text(redact(str(exc), all_secrets()), human_width(sys.stderr)), err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, and the traceback only on request
        if env_flag("DT_DEBUG"):
            raise
        message = redact(f"{type(exc).__name__}: {exc}", all_secrets())
        click.echo(f"internal error: {message} (a bug; set DT_DEBUG=1 for the traceback)", err=True)
        return EXIT_FAILED
    return int(result) if isinstance(result, int) else 0


def human_width(stream: Any) -> int | None:
    """Columns to wrap people's text to: the terminal's (at most 120), or None when not a terminal."""
    if not stream.isatty():
        return None
    return min(shutil.get_terminal_size().columns, TABLE_WIDTH)


def error_text(message: str, width: int | None = None) -> str:
    """``error: …`` with digests shortened; with a ``width``, wrapped at word boundaries to it."""
    lines: list[str] = []
    for paragraph in short_digests(message).splitlines() or [""]:
        # Later lines keep their own indent ("  - problem"); their continuations hang 4 further in.
        indent = "" if not lines else paragraph[: len(paragraph) - len(paragraph.lstrip())]
        first = "error: " if not lines else indent
        lines.extend(
            textwrap.wrap(
                paragraph.strip(),
                width=width or 1 << 30,
                initial_indent=first,
                subsequent_indent=indent + "    ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [first]
        )
    return "\n".join(lines)


def run_async(coro: Any) -> Any:
    """Run a coroutine to completion (one event loop per command)."""
    return asyncio.run(coro)


def env_flag(name: str) -> bool:
    """True for 1/true/yes in the environment."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str, option: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1h30m`` → seconds; a bad value is a usage error."""
    raw = text.strip().lower()
    if not raw:
        raise UsageError(f"{option}: empty duration")
    try:
        return float(raw)
    except ValueError:
        pass
    total, number = 0.0, ""
    for char in raw:
        if char.isdigit() or char == ".":
            number += char
        elif char in _DURATION_UNITS and number:
            total += float(number) * _DURATION_UNITS[char]
            number = ""
        else:
            raise UsageError(f"{option}: invalid duration {text!r}; use e.g. 90s, 30m, 2h or 1h30m")
    if number:
        raise UsageError(f"{option}: invalid duration {text!r}; give a unit (s, m, h) after {number}")
    return total


attestations_option = click.option(
    "--attestations",
    type=click.Choice(["keep", "drop", "auto"]),
    default="auto",
    show_default=True,
    help="Attestation/artifact manifests of an index: keep them, drop them, or keep them unless the "
    "destination refuses them (auto: then publish without them and warn).",
)
"""``--attestations keep|drop|auto`` of ``copy`` and ``sync`` (an images.json entry's own field wins)."""


FLATTEN_HELP = (
    "Entries without a target take the source's whole path, '/' replaced by SEP "
    "(bitnami/redis -> bitnami_redis), instead of its last part."
)


def flatten_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--flatten SEP`` for the commands that read images.json."""
    return click.option("--flatten", metavar="SEP", default=None, help=FLATTEN_HELP)(function)
