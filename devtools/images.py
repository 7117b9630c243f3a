"""Push synthetic images to a registry with plain synchronous httpx (independent of docker_transfer).

Layers are random bytes; manifests, configs and indexes are real OCI / Docker v2 documents, so
a registry validates them like any pushed image.  Handles anonymous, HTTP Basic (htpasswd) and
Bearer-token registries, and TLS with a custom CA.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ATTESTATION_ARTIFACT = "application/vnd.docker.attestation.manifest.v1+json"

Format = Literal["oci", "docker"]
AttestationStyle = Literal["buildkit", "oci-artifact"]
"""``buildkit``: an image manifest with an ``unknown/unknown`` image config (BuildKit before OCI 1.1);
``oci-artifact``: an OCI 1.1 artifact (``artifactType``, empty config, ``subject``), which ACR refuses."""
Verify = bool | str | ssl.SSLContext
_MEDIA = {
    "oci": (OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
    "docker": (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
}


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Deterministic compact JSON encoding used for all generated documents."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """OCI descriptor ``{mediaType, digest, size, **extra}`` for ``data``."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def parse_platform(platform: str) -> dict[str, str]:
    """``"linux/arm64/v8"`` -> ``{"os": "linux", "architecture": "arm64", "variant": "v8"}``."""
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"bad platform {platform!r}; want os/arch[/variant]")
    result = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        result["variant"] = parts[2]
    return result


class PushedManifest(NamedTuple):
    """A manifest as pushed: digest, exact bytes, media type."""

    digest: str
    data: bytes
    media_type: str


@dataclass
class PushedImage:
    """Result of :func:`push_image`."""

    repo: str
    tag: str
    index_digest: str
    index_bytes: bytes
    index_media_type: str
    children: dict[str, PushedManifest]
    """Platform string (as given) -> its image manifest."""
    attestations: dict[str, PushedManifest] = field(default_factory=dict)
    """Platform string -> the attestation manifest that refers to that platform's manifest."""
    platform_blobs: dict[str, list[str]] = field(default_factory=dict)
    """Platform string -> [config digest, layer digests...]."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    """Every blob pushed (configs, layers, attestation blobs): digest -> bytes."""

    @property
    def index(self) -> PushedManifest:
        """The index / manifest list as a :class:`PushedManifest`."""
        return PushedManifest(self.index_digest, self.index_bytes, self.index_media_type)


@dataclass
class PushedSingle:
    """Result of :func:`push_single`: one image manifest (no index)."""

    repo: str
    tag: str
    manifest: PushedManifest
    config_digest: str
    layer_digests: list[str]
    blobs: dict[str, bytes]

    @property
    def digest(self) -> str:
        """The manifest digest."""
        return self.manifest.digest


class RegistryPusher:
    """Synchronous registry client for seeding test registries (context manager)."""

    def __init__(
        self, registry_url: str, *, auth: tuple[str, str] | None = None, verify: Verify = True
    ) -> None:
        self.base = registry_url.rstrip("/")
        self.auth = auth
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self.client = httpx.Client(verify=verify, timeout=30.0)
        self._authz: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    # -- auth-aware request --------------------------------------------------------------------
    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request, answering one Basic or Bearer challenge if the registry asks."""
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        headers = dict(kwargs.pop("headers", {}) or {})
        if self._authz is not None:
            headers["Authorization"] = self._authz
        resp = self.client.request(method, url, headers=headers, **kwargs)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        self._authz = self._answer_challenge(challenge)
        headers["Authorization"] = self._authz
        return self.client.request(method, url, headers=headers, **kwargs)

    def _answer_challenge(self, challenge: str) -> str:
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self.auth is None:
                raise PermissionError("registry wants Basic auth but no credentials were given")
            return "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        if scheme.lower() != "bearer":
            raise PermissionError(f"unsupported challenge {challenge!r}")
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
        query = {k: params[k] for k in ("service", "scope") if k in params}
        resp = self.client.get(params["realm"], params=query, auth=self.auth)
        if resp.status_code != 200:
            raise PermissionError(f"token server said {resp.status_code}: {resp.text}")
        body = resp.json()
        token: str = body.get("token") or body["access_token"]
        return "Bearer " + token

    # -- primitives ----------------------------------------------------------------------------
    def blob_exists(self, repo: str, digest: str) -> bool:
        """HEAD the blob."""
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status_code == 200

    def push_blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT ?digest=); skipped if the blob already exists."""
        digest = sha256_digest(data)
        if self.blob_exists(repo, digest):
            return digest
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        _expect(resp, 202)
        location = httpx.URL(self.base + "/").join(resp.headers["Location"])
        put_url = location.copy_merge_params({"digest": digest})
        resp = self.request(
            "PUT", str(put_url), content=data, headers={"Content-Type": "application/octet-stream"}
        )
        _expect(resp, 201)
        return digest

    def push_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        """PUT a manifest (by tag or digest); returns its digest."""
        resp = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type}
        )
        _expect(resp, 201)
        return sha256_digest(data)

    def get_manifest(self, repo: str, ref: str, accept: str | None = None) -> PushedManifest:
        """GET a manifest (accepting all known types unless ``accept`` is given)."""
        accept = accept or ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
        _expect(resp, 200)
        return PushedManifest(sha256_digest(resp.content), resp.content, resp.headers.get("Content-Type", ""))

    def get_blob(self, repo: str, digest: str) -> bytes:
        """GET a blob's bytes (following redirects)."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
        _expect(resp, 200)
        return resp.content

    # -- images --------------------------------------------------------------------------------
    def _push_blobs(self, repo: str, datas: list[bytes], blobs: dict[str, bytes] | None) -> None:
        for data in datas:
            digest = self.push_blob(repo, data)
            if blobs is not None:
                blobs[digest] = data

    def _push_image_manifest(
        self, repo: str, ref: str | None, fmt: Format, config: bytes, layers: list[dict[str, Any]]
    ) -> PushedManifest:
        _, manifest_type, config_type, _ = _MEDIA[fmt]
        doc = {"schemaVersion": 2, "mediaType": manifest_type, "config": descriptor(config_type, config)}
        manifest = canonical_json(doc | {"layers": layers})
        digest = self.push_manifest(repo, ref or sha256_digest(manifest), manifest, manifest_type)
        return PushedManifest(digest, manifest, manifest_type)

    def push_platform_manifest(
        self,
        repo: str,
        platform: str,
        *,
        fmt: Format = "oci",
        layers: list[bytes],
        ref: str | None = None,
        blobs: dict[str, bytes] | None = None,
    ) -> tuple[PushedManifest, str, list[str]]:
        """Push config + layers + image manifest; returns (manifest, config digest, layer digests)."""
        config = canonical_json(
            {
                **parse_platform(platform),
                "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer) for layer in layers]},
                "history": [{"created_by": f"devtools layer {i}"} for i in range(len(layers))],
            }
        )
        self._push_blobs(repo, [*layers, config], blobs)
        layer_descs = [descriptor(_MEDIA[fmt][3], layer) for layer in layers]
        manifest = self._push_image_manifest(repo, ref, fmt, config, layer_descs)
        return manifest, sha256_digest(config), [d["digest"] for d in layer_descs]

    def push_attestation(
        self,
        repo: str,
        subject: PushedManifest,
        blobs: dict[str, bytes],
        style: AttestationStyle = "buildkit",
    ) -> PushedManifest:
        """Push a buildx-style attestation manifest (in-toto layer) describing ``subject``."""
        predicate_type = "https://slsa.dev/provenance/v0.2"
        statement = canonical_json(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": predicate_type,
                "subject": [{"name": f"pkg:docker/{repo}", "digest": {"sha256": subject.digest[7:]}}],
                "predicate": {"builder": {"id": "devtools"}, "nonce": os.urandom(8).hex()},
            }
        )
        layer = descriptor(IN_TOTO, statement, annotations={"in-toto.io/predicate-type": predicate_type})
        if style == "oci-artifact":
            empty = b"{}"
            self._push_blobs(repo, [statement, empty], blobs)
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": ATTESTATION_ARTIFACT,
                "config": descriptor(OCI_EMPTY, empty),
                "layers": [layer],
                "subject": descriptor(subject.media_type, subject.data),
            }
            manifest = canonical_json(doc)
            digest = self.push_manifest(repo, sha256_digest(manifest), manifest, OCI_MANIFEST)
            return PushedManifest(digest, manifest, OCI_MANIFEST)
        rootfs = {"type": "layers", "diff_ids": [sha256_digest(statement)]}
        config = canonical_json({"architecture": "unknown", "os": "unknown", "config": {}, "rootfs": rootfs})
        self._push_blobs(repo, [statement, config], blobs)
        return self._push_image_manifest(repo, None, "oci", config, [layer])

    def push_image(
        self,
        repo: str,
        tag: str,
        *,
        platforms: list[str],
        fmt: Format = "oci",
        layers_per_platform: int = 2,
        layer_size: int = 2048,
        shared_layers: list[bytes] | None = None,
        attestations: bool = False,
        attestation_style: AttestationStyle = "buildkit",
    ) -> PushedImage:
        """Push a multi-platform image: children first, then the index under ``tag``."""
        if attestations and fmt != "oci":
            raise ValueError("attestation manifests need fmt='oci'")
        img = PushedImage(repo, tag, "", b"", _MEDIA[fmt][0], {})
        entries: list[dict[str, Any]] = []
        for platform in platforms:
            layers = list(shared_layers or []) + [os.urandom(layer_size) for _ in range(layers_per_platform)]
            child, config_digest, layer_digests = self.push_platform_manifest(
                repo, platform, fmt=fmt, layers=layers, blobs=img.blobs
            )
            img.children[platform] = child
            img.platform_blobs[platform] = [config_digest, *layer_digests]
            entries.append(descriptor(child.media_type, child.data, platform=parse_platform(platform)))
        for platform, child in img.children.items() if attestations else ():
            att = self.push_attestation(repo, child, img.blobs, attestation_style)
            img.attestations[platform] = att
            annotations = {
                "vnd.docker.reference.digest": child.digest,
                "vnd.docker.reference.type": "attestation-manifest",
            }
            platform_unknown = {"architecture": "unknown", "os": "unknown"}
            extra = {"artifactType": ATTESTATION_ARTIFACT} if attestation_style == "oci-artifact" else {}
            entries.append(
                descriptor(
                    OCI_MANIFEST, att.data, annotations=annotations, platform=platform_unknown, **extra
                )
            )
        img.index_bytes = canonical_json(
            {"schemaVersion": 2, "mediaType": img.index_media_type, "manifests": entries}
        )
        img.index_digest = self.push_manifest(repo, tag, img.index_bytes, img.index_media_type)
        return img

    def push_single(
        self,
        repo: str,
        tag: str,
        *,
        platform: str = "linux/amd64",
        fmt: Format = "oci",
        layers: int = 2,
        layer_size: int = 2048,
        shared_layers: list[bytes] | None = None,
    ) -> PushedSingle:
        """Push one single-platform image manifest under ``tag`` (no index)."""
        blobs: dict[str, bytes] = {}
        layer_data = list(shared_layers or []) + [os.urandom(layer_size) for _ in range(layers)]
        manifest, config_digest, layer_digests = self.push_platform_manifest(
            repo, platform, fmt=fmt, layers=layer_data, ref=tag, blobs=blobs
        )
        return PushedSingle(repo, tag, manifest, config_digest, layer_digests, blobs)


def _expect(resp: httpx.Response, status: int) -> None:
    if resp.status_code != status:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url} -> {resp.status_code} (wanted {status}): "
            + resp.text[:500]
        )


def push_image(
    registry_url: str,
    repo: str,
    tag: str,
    *,
    platforms: list[str] | None = None,
    fmt: Format = "oci",
    layers_per_platform: int = 2,
    layer_size: int = 2048,
    shared_layers: list[bytes] | None = None,
    attestations: bool = False,
    attestation_style: AttestationStyle = "buildkit",
    auth: tuple[str, str] | None = None,
    verify: Verify = True,
) -> PushedImage:
    """Push a multi-platform image (default linux/amd64 + linux/arm64/v8); see :class:`RegistryPusher`."""
    with RegistryPusher(registry_url, auth=auth, verify=verify) as pusher:
        return pusher.push_image(
            repo,
            tag,
            platforms=platforms or ["linux/amd64", "linux/arm64/v8"],
            fmt=fmt,
            layers_per_platform=layers_per_platform,
            layer_size=layer_size,
            shared_layers=shared_layers,
            attestations=attestations,
            attestation_style=attestation_style,
        )


def push_single(
    registry_url: str,
    repo: str,
    tag: str,
    *,
    platform: str = "linux/amd64",
    fmt: Format = "oci",
    layers: int = 2,
    layer_size: int = 2048,
    shared_layers: list[bytes] | None = None,
    auth: tuple[str, str] | None = None,
    verify: Verify = True,
) -> PushedSingle:
    """Push a single-platform image manifest (no index)."""
    with RegistryPusher(registry_url, auth=auth, verify=verify) as pusher:
        return pusher.push_single(
            repo,
            tag,
            platform=platform,
            fmt=fmt,
            layers=layers,
            layer_size=layer_size,
            shared_layers=shared_layers,
        )


def push_blob(
    registry_url: str, repo: str, data: bytes, *, auth: tuple[str, str] | None = None, verify: Verify = True
) -> str:
    """Upload one blob; returns its digest."""
    with RegistryPusher(registry_url, auth=auth, verify=verify) as pusher:
        return pusher.push_blob(repo, data)


def push_manifest(
    registry_url: str,
    repo: str,
    ref: str,
    data: bytes,
    media_type: str,
    *,
    auth: tuple[str, str] | None = None,
    verify: Verify = True,
) -> str:
    """PUT one manifest; returns its digest."""
    with RegistryPusher(registry_url, auth=auth, verify=verify) as pusher:
        return pusher.push_manifest(repo, ref, data, media_type)
