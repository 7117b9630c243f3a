"""Every performance tweak that reaches into another library, in one place, off until applied.

The command line calls :func:`apply` at start; a library user may call it too, knowing that
it changes process-wide state (docs/library.md). Without it, ``import docker_transfer`` and
its :class:`~docker_transfer.api.Client` leave httpx, httpcore, asyncio and stamina exactly as
they were. What :func:`apply` does, and what each costs or saves (docs/performance.md):

* **httpx's own command line is loaded on first use** (:func:`defer_httpx_cli`): ``import
  httpx`` also imports ``httpx._main`` and, with it, rich's and pygments' heavy modules
  (~37 ms of every start). A stand-in module takes its place in ``sys.modules``.
* **Larger socket reads**: httpcore reads 64 KiB at a time (``AsyncHTTP11Connection.
  READ_NUM_BYTES``, a class attribute, so every client in the process); 1 MiB cuts the CPU
  per blob (64 KiB -> 256 KiB: about 15 %; 256 KiB -> 1 MiB: about 9 % more).
* **The asyncio network backend** (:mod:`docker_transfer.registry.netbackend`) under every
  client :meth:`~docker_transfer.registry.transport.TransportOptions.build_client` makes
  (httpcore's private ``_pool._network_backend``), and the asyncio transports' read sizes
  (``max_size``, asyncio's private attributes, plain TCP and TLS).
* **Deferred CA loading**: the system bundle is read at the first verified handshake, not when
  the client is built (20-35 ms, paid for nothing by a run whose hosts are all plain HTTP).

:func:`leave` (skip the interpreter's teardown at exit) is the command line's alone and is
not part of :func:`apply`. :func:`private_attributes_missing` lists the private attributes
these rely on that the installed versions lack (tests/test_speedups.py fails on any).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import ssl
import sys
import types
from dataclasses import dataclass
from typing import Any, NoReturn

HTTPX_CLI = "httpx._main"
READ_SIZE = 1024 * 1024
"""Bytes per socket read: what httpcore asks for and what asyncio's transports recv."""


@dataclass
class _State:
    applied: bool = False
    asyncio_backend: bool = True


_STATE = _State()


def apply(*, asyncio_backend: bool = True) -> None:
    """Turn every speed-up on for this process (idempotent).

    ``asyncio_backend=False`` keeps httpcore's own (anyio) network backend for the clients
    built from now on; the other speed-ups still apply.
    """
    defer_httpx_cli()
    _larger_httpcore_reads()
    _STATE.applied = True
    _STATE.asyncio_backend = asyncio_backend


def applied() -> bool:
    """True once :func:`apply` ran in this process."""
    return _STATE.applied


# --- httpx's command line ---------------------------------------------------------------------


class _DeferredHttpxCli(types.ModuleType):
    """Stands in for ``httpx._main`` until its ``main`` is called."""

    def __init__(self) -> None:
        super().__init__(HTTPX_CLI, "httpx's command line, loaded on first use by docker_transfer")

    @staticmethod
    def main(*args: Any, **kwargs: Any) -> Any:
        """Load the real ``httpx._main`` and run its ``main``."""
        if isinstance(sys.modules.get(HTTPX_CLI), _DeferredHttpxCli):
            del sys.modules[HTTPX_CLI]
        return importlib.import_module(HTTPX_CLI).main(*args, **kwargs)


def defer_httpx_cli() -> None:
    """Register the stand-in for ``httpx._main``, unless httpx (or its CLI) is already imported.

    Only ``sys.modules`` is touched: no httpx import, no I/O. ``httpx.main`` keeps working:
    the stand-in's ``main`` loads and runs the real one.
    """
    if "httpx" in sys.modules or HTTPX_CLI in sys.modules:
        return
    sys.modules[HTTPX_CLI] = _DeferredHttpxCli()


# --- read sizes ---------------------------------------------------------------------------------


def _larger_httpcore_reads() -> None:
    """Have httpcore read ``READ_SIZE`` at a time (its own knob; a different layout keeps 64 KiB)."""
    try:
        from httpcore._async.http11 import AsyncHTTP11Connection  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a different httpcore layout: keep its default
        return
    if getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", READ_SIZE) < READ_SIZE:
        AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE


def larger_tcp_reads(transport: object) -> None:
    """Tell asyncio's plain-TCP transport to recv ``READ_SIZE`` (its default is 256 KiB)."""
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = READ_SIZE  # type: ignore[attr-defined]


def larger_tls_reads(transport: object) -> None:
    """asyncio's TLS layer also reads at most 256 KiB per socket read; match ``READ_SIZE``."""
    tls = getattr(transport, "_ssl_protocol", None)
    if isinstance(getattr(tls, "max_size", None), int):
        tls.max_size = READ_SIZE  # type: ignore[union-attr]


# --- per client ---------------------------------------------------------------------------------


def tune_client(client: Any) -> None:
    """Once applied: put the asyncio network backend under ``client``'s transport and every mount.

    Must run before the client opens its first connection. httpx does not expose the backend
    as a parameter, so this sets httpcore's attribute; a layout without it keeps the default.
    Pools made later (one per origin, registry/hostpool.py) call :func:`tune_transport` themselves.
    """
    for transport in (client._transport, *client._mounts.values()):
        if transport is not None:
            tune_transport(transport)


def tune_transport(transport: object) -> None:
    """Once applied: the asyncio network backend under one ``httpx.AsyncHTTPTransport``."""
    if _STATE.applied and _STATE.asyncio_backend:
        use_asyncio_backend(transport)


def use_asyncio_backend(transport: object) -> bool:
    """Point an ``httpx.AsyncHTTPTransport``'s pool at the asyncio backend (False: layout unknown)."""
    from docker_transfer.registry.netbackend import AsyncioBackend  # noqa: PLC0415

    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        return False
    pool._network_backend = AsyncioBackend()
    return True


def trust_context(cafile: str | None) -> ssl.SSLContext:
    """A verifying client context trusting ``cafile`` (None: the system's CAs).

    Once applied, the bundle is loaded at the first handshake (:class:`DeferredTrustContext`);
    otherwise now, as :func:`ssl.create_default_context` does.
    """
    if _STATE.applied:
        ctx = DeferredTrustContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.trust_later(cafile)
        return ctx
    return ssl.create_default_context(cafile=cafile)


class DeferredTrustContext(ssl.SSLContext):
    """A verifying client context that loads its CA bundle on the first handshake.

    Same settings as :func:`ssl.create_default_context` (``PROTOCOL_TLS_CLIENT``:
    hostname check, certificate required); only the moment the bundle is read differs.
    """

    _cafile: str | None = None
    _pending = False

    def trust_later(self, cafile: str | None) -> None:
        """Load ``cafile`` (or the system's default CAs when None) before the first handshake."""
        self._cafile = cafile
        self._pending = True

    def _load_trust(self) -> None:
        if self._pending:
            self._pending = False
            if self._cafile:
                self.load_verify_locations(cafile=self._cafile)
            else:
                self.load_default_certs(ssl.Purpose.SERVER_AUTH)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """Load the bundle if still pending, then as :meth:`ssl.SSLContext.wrap_bio`."""
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Load the bundle if still pending, then as :meth:`ssl.SSLContext.wrap_socket`."""
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)


# --- the command line's exit ----------------------------------------------------------------------


def leave(code: int, *, full_exit: bool = False) -> NoReturn:
    """Flush stdout and stderr, then end the process without the interpreter's teardown.

    Tearing down a few hundred imported modules and the event loop's leftovers took
    ~50 ms of every run (a fifth of a no-op rerun, docs/performance.md), and a command
    has nothing left to clean. With ``full_exit`` (or under coverage) the normal exit runs,
    so atexit hooks still work where something relies on them. For the command line only.
    """
    if full_exit or "coverage" in sys.modules:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`| head`) or stream: nothing more can be shown anyway.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


# --- what the speed-ups rely on ------------------------------------------------------------------


def private_attributes_missing() -> list[str]:
    """One line per private attribute a speed-up relies on that the installed versions lack."""
    from importlib import metadata  # noqa: PLC0415

    import httpx  # noqa: PLC0415
    from httpcore._async.http11 import AsyncHTTP11Connection  # noqa: PLC0415

    versions = f"httpx {metadata.version('httpx')}, httpcore {metadata.version('httpcore')}"
    missing: list[str] = []
    if not isinstance(getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", None), int):
        missing.append(f"httpcore._async.http11.AsyncHTTP11Connection.READ_NUM_BYTES ({versions})")
    client = httpx.AsyncClient(mounts={"https://example.invalid": httpx.AsyncHTTPTransport()})
    for name in ("_transport", "_mounts"):
        if not hasattr(client, name):
            missing.append(f"httpx.AsyncClient.{name} ({versions})")
    pool = getattr(httpx.AsyncHTTPTransport(), "_pool", None)
    if pool is None:
        missing.append(f"httpx.AsyncHTTPTransport._pool ({versions})")
    elif not hasattr(pool, "_network_backend"):
        missing.append(f"httpcore.AsyncConnectionPool._network_backend ({versions})")
    if importlib.util.find_spec(HTTPX_CLI) is None:
        missing.append(f"module {HTTPX_CLI} ({versions})")
    python = f"Python {sys.version.split()[0]}"
    from asyncio import selector_events, sslproto  # noqa: PLC0415

    tcp = getattr(selector_events, "_SelectorSocketTransport", None)
    if not isinstance(getattr(tcp, "max_size", None), int):
        missing.append(f"asyncio.selector_events._SelectorSocketTransport.max_size ({python})")
    if not isinstance(getattr(sslproto.SSLProtocol, "max_size", None), int):
        missing.append(f"asyncio.sslproto.SSLProtocol.max_size ({python})")
    if "self._ssl_protocol" not in inspect.getsource(sslproto._SSLProtocolTransport.__init__):
        missing.append(f"asyncio.sslproto._SSLProtocolTransport._ssl_protocol ({python})")
    return missing
