"""The one transport seam: which hosts get TLS, which CA bundle, what timeouts.

Security is decided here and nowhere else. HTTPS with certificate verification
is the default for every host, loopback included; a host gets plain HTTP (and
unverified TLS) only when the user listed it as insecure.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from docker_transfer.errors import UnsafeRedirectError, UsageError
from docker_transfer.registry.hostpool import PerOriginTransport
from docker_transfer.speedups import trust_context, tune_client, tune_transport

INSECURE_ENV = "DT_INSECURE_REGISTRIES"
_HOST_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")
USER_AGENT = "docker-transfer/0.1"


def normalise_host(host: str) -> str:
    """Lower-case a ``host[:port]`` and drop a default port so lookups agree."""
    host = host.strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    host = host.rstrip("/")
    if not host or "/" in host:
        raise UsageError(f"invalid registry host {host!r}: expected HOST[:PORT]")
    return host


def insecure_hosts_from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    """Hosts listed in ``DT_INSECURE_REGISTRIES`` (comma-separated)."""
    env = os.environ if environ is None else environ
    raw = env.get(INSECURE_ENV, "")
    return frozenset(normalise_host(h) for h in raw.split(",") if h.strip())


@dataclass(frozen=True)
class TransportOptions:
    """How to reach registries: insecure hosts, extra CA, timeouts, pool size."""

    insecure_hosts: frozenset[str] = field(default_factory=frozenset)
    ca_cert: str | None = None
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    max_connections: int = 24
    """Pool bound: 8 blob streams need 16 (a GET and a PUT each); httpcore scans the pool per request."""

    @classmethod
    def create(
        cls,
        insecure: Iterable[str] = (),
        *,
        ca_cert: str | None = None,
        read_timeout: float = 60.0,
        use_env: bool = False,
    ) -> TransportOptions:
        """Build options from CLI values (plus ``DT_INSECURE_REGISTRIES`` with ``use_env``)."""
        hosts = {normalise_host(h) for h in insecure}
        if use_env:
            hosts |= insecure_hosts_from_env()
        if ca_cert is not None and not os.path.isfile(ca_cert):
            raise UsageError(f"--ca-cert {ca_cert}: no such file")
        return cls(insecure_hosts=frozenset(hosts), ca_cert=ca_cert, read_timeout=read_timeout)

    def is_insecure(self, host: str) -> bool:
        """True when ``host`` (``name[:port]``) or its bare name was opted out of TLS checks."""
        host = host.lower()
        if host in self.insecure_hosts:
            return True
        bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return bare in self.insecure_hosts

    def scheme(self, host: str) -> str:
        """``http`` for insecure-listed hosts, else ``https``."""
        return "http" if self.is_insecure(host) else "https"

    def base_url(self, host: str) -> str:
        """The API root of a registry host."""
        return f"{self.scheme(host)}://{host}"

    def ssl_context(self) -> ssl.SSLContext:
        """System CAs (or ``SSL_CERT_FILE``), plus ``--ca-cert`` when given.

        With :mod:`docker_transfer.speedups` applied the system bundle is read at the first
        verified handshake, not at start-up, as Go loads its roots for skopeo.
        ``--ca-cert`` is read now, so a bad file fails early.
        """
        # SSL_CERT_FILE replaces the default bundle, as for OpenSSL (and httpx) itself.
        ctx = trust_context(os.environ.get("SSL_CERT_FILE") or None)
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog:
            ctx.keylog_filename = keylog
        if self.ca_cert:
            ctx.load_verify_locations(cafile=self.ca_cert)
        return ctx

    def follow_url(self, base: httpx.URL, location: str, *, relative: bool = True) -> httpx.URL:
        """Resolve a server-supplied ``location`` against ``base`` and vet it with :meth:`check_url`.

        A malformed URL (``http://[::1``, a port that is not a number) is refused
        here as an :class:`UnsafeRedirectError`: no retry can make it valid.
        Without ``relative`` (a token realm) the URL is taken as written.
        """
        try:
            url = base.join(location) if relative else httpx.URL(location)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise UnsafeRedirectError(redact_text(location), f"malformed URL ({_reason(exc)})") from None
        self.check_url(url, previous=base)
        return url

    def check_url(self, url: httpx.URL, *, previous: httpx.URL | None = None) -> None:
        """Refuse server-supplied URLs that would downgrade or reach internal addresses.

        A redirect from https to http is refused unless the target host is
        insecure-listed; so is a literal link-local, private or loopback
        address (cloud metadata endpoints live there) that the user did not list.
        A URL without a usable host or with a port outside 1-65535 is refused too.
        """
        host = url.host
        hostport = f"{host}:{url.port}" if url.port else host
        if url.scheme not in ("http", "https"):
            raise UnsafeRedirectError(_redact(url), f"scheme {url.scheme!r} is not allowed")
        if url.port is not None and not 0 < url.port < 65536:
            raise UnsafeRedirectError(_redact(url), f"port {url.port} is not a valid TCP port")
        raw_host = url.raw_host.decode("ascii", "replace")
        if not host or (_ip_literal(host) is None and _HOST_NAME_RE.fullmatch(raw_host) is None):
            raise UnsafeRedirectError(_redact(url), f"{host!r} is not a valid host name")
        listed = self.is_insecure(hostport) or self.is_insecure(host)
        if previous is not None and previous.scheme == "https" and url.scheme == "http" and not listed:
            raise UnsafeRedirectError(_redact(url), "redirect from https to plain http")
        ip = _ip_literal(host)
        if ip is None:
            return
        if (ip.is_link_local or ip.is_private or ip.is_loopback or ip.is_unspecified) and not listed:
            if previous is not None and previous.host == url.host:
                return
            raise UnsafeRedirectError(
                _redact(url), f"{ip} is an internal address; list it with --insecure-registry to allow"
            )

    def build_client(self) -> httpx.AsyncClient:
        """One async client: a connection pool per origin, per-host TLS handled by mounted transports."""
        timeout = httpx.Timeout(self.connect_timeout, read=self.read_timeout, write=self.read_timeout)
        limits = httpx.Limits(
            max_connections=self.max_connections, max_keepalive_connections=self.max_connections
        )
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        for host in sorted(self.insecure_hosts):
            # A mount replaces httpx's proxy mounts for this host: give it the proxy itself.
            proxy = https_proxy_for(host)
            mounts[f"https://{host}"] = httpx.AsyncHTTPTransport(verify=False, limits=limits, proxy=proxy)
        verify = self.ssl_context()

        def origin_pool(origin: str) -> httpx.AsyncBaseTransport:
            # httpx reads no proxy variables once given a transport: each origin's pool gets its own.
            scheme, _, hostport = origin.partition("://")
            proxy = proxy_for(scheme, _default_port_dropped(scheme, hostport))
            pool = httpx.AsyncHTTPTransport(verify=verify, limits=limits, proxy=proxy)
            tune_transport(pool)  # made after the client: tune_client below cannot reach it
            return pool

        client = httpx.AsyncClient(
            verify=verify,
            timeout=timeout,
            limits=limits,
            mounts=mounts,
            # One pool per origin (registry/hostpool.py), each with the proxy the environment names.
            transport=PerOriginTransport(origin_pool),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            # HTTP(S)_PROXY / NO_PROXY are honoured; TLS trust comes from ssl_context() alone.
            trust_env=True,
        )
        # The asyncio network backend, when docker_transfer.speedups was applied.
        tune_client(client)
        return client


def https_proxy_for(host: str) -> str | None:
    """The ``HTTPS_PROXY`` (or ``ALL_PROXY``) for ``https://host``; None when ``NO_PROXY`` exempts it."""
    return proxy_for("https", host)


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme://host`` (``HTTPS_PROXY``/``HTTP_PROXY``, else
    ``ALL_PROXY``); None when there is none or ``NO_PROXY`` exempts the host."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def _default_port_dropped(scheme: str, hostport: str) -> str:
    default = ":443" if scheme == "https" else ":80"
    return hostport.removesuffix(default)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal names, including the legacy IPv4 forms resolvers accept.

    ``2852039166``, ``0xa9fea9fe`` and ``169.254.43518`` all reach 169.254.169.254
    through getaddrinfo, so they are addresses, not names.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _redact(url: httpx.URL) -> str:
    """A URL without userinfo or query string, safe for messages."""
    return str(url.copy_with(query=None, username=None, password=None))


def redact_text(text: str) -> str:
    """A URL that does not parse, cut as :func:`redact_url` would: no query, no userinfo, bounded."""
    text = text.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = text.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        text = f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path}"
    return text.encode("ascii", "backslashreplace").decode("ascii")[:200]


def _reason(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:120] or type(exc).__name__


def redact_url(url: httpx.URL | str) -> str:
    """Public form of :func:`_redact` for logs and errors."""
    return _redact(httpx.URL(str(url)))
