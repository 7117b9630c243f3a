"""Run a real CNCF Distribution registry (``docker-registry serve``) on 127.0.0.1 for tests.

The registry is the Debian/Ubuntu ``docker-registry`` package (Distribution 2.8).  Every
instance gets its own work directory holding the generated ``config.yml``, the storage root,
the access log (the registry's stdout, Apache combined format) and the application log (its
stderr), so tests can count exactly which requests a client made.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import bcrypt
import httpx
import trustme

INSTALL_HINT = "install it with `apt-get install docker-registry` (CNCF Distribution 2.8)"

# 127.0.0.1 - - [29/Nov/2026:23:59:04 +0000] "GET /v2/foo/manifests/x?a=b HTTP/1.1" 404 91 "" "curl/7.88.1"
_ACCESS_RE = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<bytes>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?'
)
_SYNC_PREFIX = "/v2/devtools-log-sync/manifests/"


class TokenAuth(Protocol):
    """What the registry needs to delegate auth to a token server (``TokenServer`` fits)."""

    @property
    def realm(self) -> str:
        """Token endpoint URL."""
        ...

    @property
    def service(self) -> str:
        """Expected JWT audience."""
        ...

    @property
    def issuer(self) -> str:
        """Expected JWT issuer."""
        ...

    @property
    def rootcert_path(self) -> Path:
        """PEM bundle with the token signing certificate(s)."""
        ...


@dataclass(frozen=True)
class AccessEntry:
    """One parsed access-log line of the registry."""

    method: str
    path: str
    """Request path without the query string."""
    query: str
    """Raw query string ('' when absent)."""
    status: int
    bytes: int
    """Response body bytes written by the registry."""
    user_agent: str


def find_registry_binary() -> str | None:
    """Return the path of ``docker-registry`` or None when it is not installed."""
    return shutil.which("docker-registry")


def free_port() -> int:
    """Ask the kernel for a currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_access_line(line: str) -> AccessEntry | None:
    """Parse one combined-format access log line; None if the line is something else."""
    m = _ACCESS_RE.match(line.strip())
    if m is None:
        return None
    uri = m["uri"]
    path, _, query = uri.partition("?")
    size = m["bytes"]
    return AccessEntry(
        method=m["method"],
        path=path,
        query=query,
        status=int(m["status"]),
        bytes=0 if size == "-" else int(size),
        user_agent=m["agent"] or "",
    )


class LocalRegistry:
    """A real ``docker-registry`` process listening on 127.0.0.1:<free port>.

    Use as a context manager (or call :meth:`start` / :meth:`stop`).  Options:

    * ``htpasswd``: username -> password; enables ``auth.htpasswd`` (bcrypt file).
    * ``token``: a :class:`TokenAuth` (e.g. ``devtools.tokenserver.TokenServer``); enables ``auth.token``.
    * ``tls``: serve HTTPS with a trustme CA; the CA bundle is at :attr:`ca_pem_path`.
    * ``storage_dir``: filesystem storage root to use (kept after stop); default is inside the workdir.
    * ``workdir``: directory for config/logs (kept after stop); default is a temp dir removed on stop.
    """

    def __init__(
        self,
        *,
        htpasswd: dict[str, str] | None = None,
        token: TokenAuth | None = None,
        tls: bool = False,
        storage_dir: Path | None = None,
        workdir: Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        if htpasswd is not None and token is not None:
            raise ValueError("choose htpasswd or token auth, not both")
        self.htpasswd = htpasswd
        self.token = token
        self.tls = tls
        self.start_timeout = start_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="registry-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_root = Path(storage_dir) if storage_dir is not None else self.workdir / "storage"
        self.storage_root.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        """The registry's stderr: its structured application log."""
        self.access_log_path = self.workdir / "access.log"
        """The registry's stdout: one combined-format line per HTTP request."""
        self.ca_pem_path: Path | None = None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._ssl_context: ssl.SSLContext | None = None

    # -- addresses -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (what goes in image references)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, ``http(s)://127.0.0.1:PORT``."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """Value for httpx's ``verify=``: an SSL context trusting the test CA, or True for http."""
        return self._ssl_context if self._ssl_context is not None else True

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the config, launch the process and wait until it answers HTTP under ``/v2/``."""
        if self._proc is not None:
            raise RuntimeError("registry already started")
        try:
            self._start()
        except BaseException:
            self.stop()  # closes files, removes a temp workdir
            raise

    def _start(self) -> None:
        binary = find_registry_binary()
        if binary is None:
            raise RuntimeError(f"docker-registry binary not found on PATH; {INSTALL_HINT}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_root.mkdir(parents=True, exist_ok=True)
        if self.tls and (self.ca_pem_path is None or not self.ca_pem_path.exists()):
            self._make_tls_material()
        last_error = ""
        for _attempt in range(3):  # retry only for the (rare) free-port race
            self.port = free_port()
            self._write_config()
            if self._launch(binary):
                return
            last_error = self._log_tail()
            if "address already in use" not in last_error:
                break
        raise RuntimeError(f"docker-registry failed to start; log tail:\n{last_error}")

    def stop(self) -> None:
        """Terminate (then kill) the process; remove the temp workdir if we created it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for f in self._files:
            f.close()
        self._files.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _launch(self, binary: str) -> bool:
        out = open(self.access_log_path, "ab")  # noqa: SIM115 - closed in stop()
        err = open(self.log_path, "ab")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        proc = subprocess.Popen(
            [binary, "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(verify=self.verify, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    out.close()
                    err.close()
                    return False
                try:
                    client.get(f"{self.url}{_SYNC_PREFIX}startup")  # filtered out of requests()
                except httpx.TransportError:
                    time.sleep(0.03)
                    continue
                self._proc = proc
                self._files = [out, err]
                return True
        proc.kill()
        proc.wait()
        out.close()
        err.close()
        raise RuntimeError(
            f"docker-registry did not answer within {self.start_timeout}s:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _make_tls_material(self) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        tls_dir = self.workdir / "tls"
        tls_dir.mkdir(exist_ok=True)
        self.ca_pem_path = tls_dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem_path))
        cert.private_key_pem.write_to_path(str(tls_dir / "server.key"))
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        (tls_dir / "server.crt").write_bytes(chain)
        self._ssl_context = ssl.create_default_context(cafile=str(self.ca_pem_path))

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  accesslog:",
            "    disabled: false",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {_q(str(self.storage_root))}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        if self.tls:
            tls_dir = self.workdir / "tls"
            lines += [
                "  tls:",
                f"    certificate: {_q(str(tls_dir / 'server.crt'))}",
                f"    key: {_q(str(tls_dir / 'server.key'))}",
            ]
        if self.htpasswd is not None:
            htpasswd_path = self.workdir / "htpasswd"
            htpasswd_path.write_text(
                "".join(
                    f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                    for user, pw in self.htpasswd.items()
                )
            )
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: devtools-registry",
                f"    path: {_q(str(htpasswd_path))}",
            ]
        if self.token is not None:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {_q(self.token.realm)}",
                f"    service: {_q(self.token.service)}",
                f"    issuer: {_q(self.token.issuer)}",
                f"    rootcertbundle: {_q(str(self.token.rootcert_path))}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- access log ----------------------------------------------------------------------------
    def _sync_log(self, timeout: float = 5.0) -> None:
        """Make a sentinel request and wait until it shows up in the access log.

        The registry writes a log line only after the response is sent, so without this a test
        could count before the last request of its client has been logged.
        """
        if not self.running:
            return
        nonce = uuid.uuid4().hex
        with httpx.Client(verify=self.verify, timeout=5.0) as client:
            client.get(f"{self.url}{_SYNC_PREFIX}{nonce}")
        deadline = time.monotonic() + timeout
        needle = nonce.encode()
        while time.monotonic() < deadline:
            if needle in self.access_log_path.read_bytes():
                return
            time.sleep(0.01)
        raise RuntimeError("access log did not record the sync request in time")

    def _all_entries(self) -> list[AccessEntry]:
        entries: list[AccessEntry] = []
        for line in self.access_log_path.read_text(errors="replace").splitlines():
            entry = parse_access_line(line)
            if entry is not None and not entry.path.startswith(_SYNC_PREFIX):
                entries.append(entry)
        return entries

    def mark(self) -> int:
        """Return a marker; ``requests(since=marker)`` then lists only later requests."""
        self._sync_log()
        return len(self._all_entries())

    def requests(self, since: int = 0) -> list[AccessEntry]:
        """All requests the registry logged (after ``since``, a value from :meth:`mark`)."""
        self._sync_log()
        return self._all_entries()[since:]

    def count(self, method: str, path_regex: str, since: int = 0) -> int:
        """Count logged requests with ``method`` whose path (no query) matches ``re.search(path_regex)``."""
        pattern = re.compile(path_regex)
        return sum(1 for e in self.requests(since) if e.method == method and pattern.search(e.path))

    # -- storage -------------------------------------------------------------------------------
    def blob_data_path(self, digest: str) -> Path:
        """Filesystem path of a stored blob's bytes (to tamper with them in tests)."""
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise ValueError(f"unsupported digest {digest!r}")
        return self.storage_root / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


class RegistryFactory(Protocol):
    """Signature of the ``registry_factory`` fixture: creates and starts a :class:`LocalRegistry`."""

    def __call__(
        self,
        *,
        htpasswd: dict[str, str] | None = None,
        token: TokenAuth | None = None,
        tls: bool = False,
        storage_dir: Path | None = None,
    ) -> LocalRegistry: ...


def _q(value: str) -> str:
    """Quote a scalar for YAML (double-quoted style; JSON string escaping is valid YAML)."""
    return json.dumps(value)
