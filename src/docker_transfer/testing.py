"""An in-memory registry for tests of code that uses docker-transfer (and of its own engine).

:class:`FakeRegistry` speaks the Distribution API from memory as an httpx transport, so the
real client, engine and :class:`~docker_transfer.api.Client` run on it unchanged, without a
socket or a registry process::

    fake = FakeRegistry(refuse_artifacts=True)            # as Azure Container Registry does
    fake.push_image("library/app", "1.0", ["linux/amd64", "linux/arm64"], attestations=True)
    async with Client(http=fake.http_client(), retry=FakeRegistry.FAST_RETRY) as client:
        result = await client.copy("registry.test/library/app:1.0", "registry.test/mirror/app")

Blobs are content-addressed and shared by repositories (a repository holds the ones linked to
it); manifests are stored by digest, tags point at digests. Switches reproduce what real
registries do: ``refuse_artifacts`` (403 DENIED "unknown manifest class" for attestation and
artifact manifests, like ACR), ``no_cross_mount`` (a mount request opens an upload instead),
``chunked_only`` (a one-request upload is refused with 405), ``rate_limit_once`` (the first API
request is answered 429 with that ``Retry-After``), ``fail_blobs`` (uploads of these digests
fail with 500). ``requests`` records every ``(method, path)``; :attr:`writes` the writes.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import httpx

from docker_transfer.manifest import (
    ATTESTATION_REF_DIGEST_KEY,
    ATTESTATION_REF_TYPE_KEY,
    OCI_INDEX,
    OCI_MANIFEST,
)
from docker_transfer.manifest import parse_manifest as _parse_manifest
from docker_transfer.registry.retry import RetryPolicy

__all__ = ["FakeRegistry"]

_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
_IN_TOTO = "application/vnd.in-toto+json"
_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)$")
_WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _reply(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> httpx.Response:
    """An answer whose body is a stream, as from the network (``aiter_raw`` reads it once)."""
    headers = {"Content-Length": str(len(body)), **(headers or {})}
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return _reply(status, {"Content-Type": "application/json", **(headers or {})}, body)


class FakeRegistry(httpx.AsyncBaseTransport):
    """One in-memory registry host (``host``), served through httpx as a transport."""

    FAST_RETRY = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.01, wait_jitter=0.0)
    """A retry policy with millisecond waits, for tests."""

    def __init__(
        self,
        host: str = "registry.test",
        *,
        refuse_artifacts: bool = False,
        no_cross_mount: bool = False,
        chunked_only: bool = False,
        rate_limit_once: float | None = None,
        fail_blobs: frozenset[str] = frozenset(),
    ) -> None:
        self.host = host
        self.refuse_artifacts = refuse_artifacts
        self.no_cross_mount = no_cross_mount
        self.chunked_only = chunked_only
        self.rate_limit_once = rate_limit_once
        self.fail_blobs = set(fail_blobs)
        self.blobs: dict[str, bytes] = {}
        self.links: dict[str, set[str]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self._uploads: dict[str, tuple[str, bytearray]] = {}
        self.requests: list[tuple[str, str]] = []
        self._committed: dict[str, int] = {}

    # --- for tests -----------------------------------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose every request this registry answers (pass it as ``http=``)."""
        return httpx.AsyncClient(transport=self)

    @staticmethod
    def http_client_for(*registries: FakeRegistry) -> httpx.AsyncClient:
        """One ``httpx.AsyncClient`` reaching each registry at its ``host`` (others: no route)."""
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {f"all://{r.host}": r for r in registries}
        return httpx.AsyncClient(transport=_NoRoute(), mounts=mounts)

    @property
    def writes(self) -> list[tuple[str, str]]:
        """The requests that change something (PUT, POST, PATCH, DELETE), in order."""
        return [(method, path) for method, path in self.requests if method in _WRITES]

    def uploads_of(self, digest: str) -> int:
        """How many times a blob's bytes were committed (a mount does not count)."""
        return self._committed.get(digest, 0)

    def add_blob(self, repository: str, data: bytes) -> str:
        """Store ``data`` in ``repository``; returns its digest."""
        digest = _digest(data)
        self.blobs[digest] = data
        self.links.setdefault(repository, set()).add(digest)
        return digest

    def add_manifest(self, repository: str, data: bytes, media_type: str, tag: str | None = None) -> str:
        """Store manifest bytes (and point ``tag`` at them); returns their digest."""
        digest = _digest(data)
        self.manifests.setdefault(repository, {})[digest] = (data, media_type)
        if tag is not None:
            self.tags.setdefault(repository, {})[tag] = digest
        return digest

    def push_image(
        self,
        repository: str,
        tag: str,
        platforms: list[str] | tuple[str, ...] = ("linux/amd64", "linux/arm64"),
        *,
        shared_layer: bytes | None = None,
        attestations: bool = False,
    ) -> str:
        """Store a multi-platform OCI index under ``tag``: one image per platform (its own layer,
        plus ``shared_layer`` in every one), with a BuildKit-style attestation each if asked."""
        entries: list[dict[str, Any]] = []
        for name in platforms:
            os_name, arch, *variant = name.split("/")
            platform = {"os": os_name, "architecture": arch, **({"variant": variant[0]} if variant else {})}
            config = json.dumps({**platform, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
            layers = [*([shared_layer] if shared_layer else []), f"{repository}:{tag}:{name}".encode()]
            child = self._image(repository, config, _OCI_CONFIG, layers, _OCI_LAYER)
            entries.append({**child, "platform": platform})
            if attestations:
                statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "for": name}).encode()
                proof = self._image(repository, b"{}", _EMPTY_CONFIG, [statement], _IN_TOTO)
                annotations = {ATTESTATION_REF_TYPE_KEY: "attestation-manifest"}
                annotations[ATTESTATION_REF_DIGEST_KEY] = child["digest"]
                unknown = {"os": "unknown", "architecture": "unknown"}
                entries.append({**proof, "platform": unknown, "annotations": annotations})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return self.add_manifest(repository, index, OCI_INDEX, tag)

    def _image(
        self, repository: str, config: bytes, config_type: str, layers: list[bytes], layer_type: str
    ) -> dict[str, Any]:
        def described(data: bytes, media_type: str) -> dict[str, Any]:
            return {"mediaType": media_type, "digest": self.add_blob(repository, data), "size": len(data)}

        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": described(config, config_type),
            "layers": [described(layer, layer_type) for layer in layers],
        }
        data = json.dumps(doc).encode()
        return {
            "mediaType": OCI_MANIFEST,
            "digest": self.add_manifest(repository, data, OCI_MANIFEST),
            "size": len(data),
        }

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest ``tag`` points at, or None."""
        return self.tags.get(repository, {}).get(tag)

    # --- the Distribution API --------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request from memory."""
        await request.aread()
        path = request.url.path
        target = path + (f"?{request.url.query.decode()}" if request.url.query else "")
        self.requests.append((request.method, target))
        if path.rstrip("/") == "/v2":
            return _reply(200, {"Content-Type": "application/json"}, b"{}")
        if self.rate_limit_once is not None:
            wait, self.rate_limit_once = self.rate_limit_once, None
            return _errors(429, "TOOMANYREQUESTS", "slow down", {"Retry-After": f"{wait:g}"})
        match = _PATH.match(path)
        if match is None:
            return _errors(404, "NAME_UNKNOWN", "no such endpoint")
        name, kind, rest = match["name"], match["kind"], match["rest"]
        if kind == "manifests":
            return self._manifest(request, name, rest)
        if kind == "tags":
            listing = {"name": name, "tags": sorted(self.tags.get(name, {}))}
            return _reply(200, {"Content-Type": "application/json"}, json.dumps(listing).encode())
        if rest.startswith("uploads"):
            return self._upload(request, name, rest.removeprefix("uploads").strip("/"))
        return self._blob(request, name, rest)

    def _manifest(self, request: httpx.Request, name: str, reference: str) -> httpx.Response:
        stored = self.manifests.setdefault(name, {})
        if request.method == "PUT":
            return self._put_manifest(request, name, reference)
        digest = reference if reference.startswith("sha256:") else self.tags.get(name, {}).get(reference)
        if digest is None or digest not in stored:
            return _errors(404, "MANIFEST_UNKNOWN", f"manifest unknown: {reference}")
        data, media_type = stored[digest]
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": media_type,
            "Content-Length": str(len(data)),
        }
        return _reply(200, headers, b"" if request.method == "HEAD" else data)

    def _put_manifest(self, request: httpx.Request, name: str, reference: str) -> httpx.Response:
        data = request.content
        media_type = request.headers.get("Content-Type", "")
        try:
            manifest = _parse_manifest(data, media_type)
        except Exception as exc:  # a fake answers like a registry: 400, whatever was wrong
            return _errors(400, "MANIFEST_INVALID", str(exc))
        if self.refuse_artifacts and manifest.is_artifact:
            return _errors(403, "DENIED", "unknown manifest class")
        linked = self.links.get(name, set())
        known = self.manifests.get(name, {})
        for blob in manifest.blobs:
            if blob.digest not in linked:
                return _errors(400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown: {blob.digest}")
        for child in manifest.manifests:
            if child.digest not in known:
                return _errors(400, "MANIFEST_BLOB_UNKNOWN", f"manifest unknown: {child.digest}")
        digest = _digest(data)
        if reference.startswith("sha256:") and reference != digest:
            return _errors(400, "DIGEST_INVALID", "digest does not match the content")
        tag = None if reference.startswith("sha256:") else reference
        self.add_manifest(name, data, media_type, tag)
        return _reply(201, {"Docker-Content-Digest": digest, "Location": request.url.path})

    def _blob(self, request: httpx.Request, name: str, digest: str) -> httpx.Response:
        if digest not in self.links.get(name, set()):
            return _errors(404, "BLOB_UNKNOWN", f"blob unknown: {digest}")
        data = self.blobs[digest]
        headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(data))}
        return _reply(200, headers, b"" if request.method == "HEAD" else data)

    def _upload(self, request: httpx.Request, name: str, session: str) -> httpx.Response:
        params = request.url.params
        if request.method == "POST":
            mount, source = params.get("mount"), params.get("from")
            if mount and source and not self.no_cross_mount and mount in self.links.get(source, set()):
                self.links.setdefault(name, set()).add(mount)
                return _reply(201, {"Location": f"/v2/{name}/blobs/{mount}"})
            key = uuid.uuid4().hex
            self._uploads[key] = (name, bytearray())
            return _reply(202, {"Location": f"/v2/{name}/blobs/uploads/{key}", "Range": "0-0"})
        if session not in self._uploads:
            return _errors(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        held = self._uploads[session][1]
        location = {"Location": f"/v2/{name}/blobs/uploads/{session}"}
        if request.method == "PATCH":
            held.extend(request.content)
            return _reply(202, {**location, "Range": f"0-{max(len(held) - 1, 0)}"})
        if request.method == "GET":
            return _reply(204, {**location, "Range": f"0-{max(len(held) - 1, 0)}"})
        if request.method != "PUT":
            return _errors(405, "UNSUPPORTED", request.method)
        if self.chunked_only and request.content:
            return _errors(405, "UNSUPPORTED", "uploads must be chunked")
        held.extend(request.content)
        digest = params.get("digest", "")
        if digest in self.fail_blobs:
            return _errors(500, "UNKNOWN", "injected failure")
        if _digest(bytes(held)) != digest:
            return _errors(400, "DIGEST_INVALID", "digest does not match the content")
        del self._uploads[session]
        self.add_blob(name, bytes(held))
        self._committed[digest] = self._committed.get(digest, 0) + 1
        return _reply(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


class _NoRoute(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"no fake registry at {request.url.host}", request=request)
