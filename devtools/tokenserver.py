"""A minimal Docker registry v2 token server (the ``auth.token`` flavour of Distribution).

Issues JWTs that a real Distribution 2.8 registry accepts.  Distribution 2.8 finds the signing
key through the JWT header: either ``kid`` (a *libtrust* key ID of a public key in its
``rootcertbundle``) or ``x5c`` (a certificate chain ending at a cert of that bundle).  Both modes
are implemented; ``kid`` is the default.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

Policy = Callable[[str | None, str, str, list[str]], list[str]]
"""``(username or None for anonymous, resource type, resource name, requested actions) -> granted``."""


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """Key ID as computed by docker/libtrust (what Distribution 2.8 matches ``kid`` against).

    base32 (no padding) of the first 240 bits of sha256(DER SubjectPublicKeyInfo), in
    12 groups of 4 characters joined by ':'.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def default_policy(username: str | None, rtype: str, name: str, actions: list[str]) -> list[str]:
    """Authenticated users get what they ask for; anonymous users get at most ``pull``."""
    if username is None:
        return [a for a in actions if a == "pull"]
    return list(actions)


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """Split ``type:name:action,action`` (the name may itself contain ':'); None if malformed."""
    rtype, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not rtype or not name:
        return None
    return rtype, name, [a for a in actions.split(",") if a]


@dataclass
class TokenRequest:
    """One request the token server received."""

    method: str
    path: str
    """Path including the query string."""
    headers: list[tuple[str, str]]
    query: dict[str, list[str]]
    status: int = 0
    username: str | None = None
    access: list[dict[str, Any]] = field(default_factory=list)
    """The ``access`` claim granted (empty when no token was issued)."""

    def header(self, name: str) -> str | None:
        """Case-insensitive lookup of a request header (first occurrence)."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


class TokenServer:
    """Threaded token server on 127.0.0.1:<free port>; a context manager.

    ``users`` maps username -> password for HTTP Basic auth.  With ``allow_anonymous`` a request
    without credentials gets a token (``pull`` only under the default policy); a wrong password
    is always 401.  ``GET /token?service=..&scope=..`` (scope may repeat) and the OAuth2
    ``POST /token`` password grant are served.  Every request is appended to :attr:`requests`.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        allow_anonymous: bool = False,
        service: str = "devtools-registry",
        issuer: str = "devtools-token-issuer",
        algorithm: Literal["ES256", "RS256"] = "ES256",
        key_header: Literal["kid", "x5c"] = "kid",
        ttl: int = 300,
        policy: Policy = default_policy,
        workdir: Path | None = None,
    ) -> None:
        self.users = dict(users or {})
        self.allow_anonymous = allow_anonymous
        self._service = service
        self._issuer = issuer
        self.algorithm = algorithm
        self.key_header = key_header
        self.ttl = ttl
        self.policy = policy
        self.expires_in: object = None
        """When set, the ``expires_in`` the answers state instead of ``ttl`` (e.g. NaN, "soon")."""
        self.requests: list[TokenRequest] = []
        self.tokens: list[str] = []
        """Every token handed out, so tests can check none leaks into output."""
        self._lock = threading.Lock()
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="tokensrv-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        if algorithm == "ES256":
            self._key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ec.generate_private_key(
                ec.SECP256R1()
            )
        else:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert = _self_signed_cert(self._key, "devtools token signer")
        self.key_id = libtrust_key_id(self._key.public_key())
        self._rootcert_path = self._workdir / "token-rootcert.pem"
        self._rootcert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- TokenAuth protocol --------------------------------------------------------------------
    @property
    def realm(self) -> str:
        """Token endpoint URL (the ``realm`` of the registry's Bearer challenge)."""
        return f"{self.url}/token"

    @property
    def service(self) -> str:
        """The ``service`` (JWT ``aud``) the registry is configured with."""
        return self._service

    @property
    def issuer(self) -> str:
        """JWT ``iss``."""
        return self._issuer

    @property
    def rootcert_path(self) -> Path:
        """PEM bundle with the signing certificate (the registry's ``rootcertbundle``)."""
        return self._rootcert_path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._httpd is None:
            raise RuntimeError("token server not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Bind a free port and serve in a daemon thread."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="token-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Shut the server down (and remove its temp dir if it created one)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- tokens --------------------------------------------------------------------------------
    def issue_token(self, subject: str, access: list[dict[str, Any]], *, ttl: int | None = None) -> str:
        """Sign a registry JWT for ``subject`` with the given ``access`` claim."""
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._service,
            "exp": now + (self.ttl if ttl is None else ttl),
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        headers: dict[str, Any] = {"typ": "JWT"}
        if self.key_header == "kid":
            headers["kid"] = self.key_id
        else:
            headers["x5c"] = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    def grant(self, username: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        """Build the ``access`` claim for the requested scopes under :attr:`policy`."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            rtype, name, actions = parsed
            granted = self.policy(username, rtype, name, actions)
            access.append({"type": rtype, "name": name, "actions": granted})
        return access

    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self.requests.append(req)


def _self_signed_cert(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _make_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr request logging."""

        def do_GET(self) -> None:
            split = urlsplit(self.path)
            self._serve(split.path, parse_qs(split.query, keep_blank_values=True))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            split = urlsplit(self.path)
            self._serve(split.path, form | parse_qs(split.query, keep_blank_values=True))

        def _serve(self, path: str, query: dict[str, list[str]]) -> None:
            req = TokenRequest(self.command, self.path, list(self.headers.items()), query)
            try:
                if path != "/token":
                    self._reply(req, 404, {"error": "not found"})
                    return
                user = self._authenticate(query)
                if user is False:
                    self._reply(req, 401, {"error": "invalid credentials"}, basic_challenge=True)
                    return
                if user is None and not server.allow_anonymous:
                    self._reply(req, 401, {"error": "authentication required"}, basic_challenge=True)
                    return
                service = (query.get("service") or [server.service])[0]
                if service != server.service:
                    self._reply(req, 400, {"error": f"unknown service {service!r}"})
                    return
                scopes = [s for raw in query.get("scope", []) for s in raw.split(" ") if s]
                req.username = user
                req.access = server.grant(user, scopes)
                token = server.issue_token(user or "", req.access)
                server.tokens.append(token)
                issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                stated = server.ttl if server.expires_in is None else server.expires_in
                body = {"token": token, "access_token": token, "expires_in": stated, "issued_at": issued}
                self._reply(req, 200, body)
            except Exception:
                if not req.status:
                    server._record(req)  # failed before answering: still on record
                raise

        def _authenticate(self, query: dict[str, list[str]]) -> str | Literal[False] | None:
            """Username, None (no credentials) or False (bad credentials)."""
            header = self.headers.get("Authorization")
            if header is not None:
                scheme, _, value = header.partition(" ")
                if scheme.lower() != "basic":
                    return False
                try:
                    username, _, password = base64.b64decode(value.strip()).decode().partition(":")
                except ValueError:
                    return False
            elif query.get("grant_type") == ["password"]:
                username = (query.get("username") or [""])[0]
                password = (query.get("password") or [""])[0]
            else:
                return None
            if server.users.get(username) != password or username not in server.users:
                return False
            return username

        def _reply(
            self, req: TokenRequest, status: int, body: dict[str, Any], *, basic_challenge: bool = False
        ) -> None:
            req.status = status
            # Recorded before the answer leaves: a test that reads requests[-1] right after the
            # client got its answer must find this request there, not the one before it.
            server._record(req)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if basic_challenge:
                self.send_header("WWW-Authenticate", 'Basic realm="devtools-token-server"')
            self.end_headers()
            self.wfile.write(data)

    return Handler
