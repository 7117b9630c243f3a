"""Prove the real test infrastructure works against a real Distribution registry."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tools import require_tool

from devtools import DockerConfigFactory
from devtools.headerserver import HeaderRecordingBlobServer, RedirectingProxy
from devtools.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    IN_TOTO,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryPusher,
    push_blob,
    push_image,
    push_single,
    sha256_digest,
)
from devtools.registry import LocalRegistry, RegistryFactory, parse_access_line
from devtools.tokenserver import TokenServer, libtrust_key_id, parse_scope

pytestmark = pytest.mark.registry
TokenServerFactory = Callable[..., TokenServer]


def skopeo_raw(ref: str, *extra: str) -> bytes:
    """``skopeo inspect --raw`` of a docker:// reference."""
    require_tool("skopeo")
    result = subprocess.run(
        ["skopeo", "inspect", "--raw", *extra, f"docker://{ref}"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


# -- pure helpers ---------------------------------------------------------------------------------


def test_parse_access_line() -> None:
    line = '127.0.0.1 - - [29/Nov/2026:23:59:04 +0000] "GET /v2/foo/manifests/x?a=b HTTP/1.1" 404 91 '
    line += '"" "curl/7.88.1"'
    entry = parse_access_line(line)
    assert entry is not None
    assert (entry.method, entry.path, entry.query, entry.status, entry.bytes) == (
        "GET",
        "/v2/foo/manifests/x",
        "a=b",
        404,
        91,
    )
    assert entry.user_agent == "curl/7.88.1"
    assert parse_access_line('time="..." level=info msg="listening"') is None


def test_libtrust_key_id_shape_and_scope_parsing() -> None:
    with TokenServer() as ts:
        kid = libtrust_key_id(ts.cert.public_key())  # type: ignore[arg-type]
        assert kid == ts.key_id
    groups = kid.split(":")
    assert len(groups) == 12 and all(len(g) == 4 for g in groups)
    assert parse_scope("repository:lib/app:pull,push") == ("repository", "lib/app", ["pull", "push"])
    assert parse_scope("repository:host:5000/app:pull") == ("repository", "host:5000/app", ["pull"])
    assert parse_scope("garbage") is None


# -- plain registry -------------------------------------------------------------------------------


def test_oci_index_with_attestations_roundtrips_exactly(registry: LocalRegistry) -> None:
    platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]
    img = push_image(registry.url, "lib/oci", "v1", platforms=platforms, attestations=True)
    assert img.index_media_type == OCI_INDEX
    assert skopeo_raw(f"{registry.host}/lib/oci:v1", "--tls-verify=false") == img.index_bytes

    index = json.loads(img.index_bytes)
    entries = index["manifests"]
    assert len(entries) == 6
    assert [e["platform"].get("variant") for e in entries[:3]] == [None, "v8", "v7"]
    for platform, att in img.attestations.items():
        entry = next(e for e in entries if e["digest"] == att.digest)
        assert entry["platform"] == {"architecture": "unknown", "os": "unknown"}
        assert entry["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
        assert entry["annotations"]["vnd.docker.reference.digest"] == img.children[platform].digest
        assert json.loads(att.data)["layers"][0]["mediaType"] == IN_TOTO

    with RegistryPusher(registry.url) as client:
        for child in img.children.values():
            assert client.get_manifest("lib/oci", child.digest) == child
            assert child.media_type == OCI_MANIFEST
        for digest, data in img.blobs.items():
            assert registry.blob_data_path(digest).read_bytes() == data
    config = json.loads(img.blobs[img.platform_blobs["linux/arm/v7"][0]])
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")


def test_docker_manifest_list_roundtrips_exactly(registry: LocalRegistry) -> None:
    platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/386"]
    shared = os.urandom(1000)
    img = push_image(
        registry.url, "lib/docker", "v2", platforms=platforms, fmt="docker", shared_layers=[shared]
    )
    assert img.index_media_type == DOCKER_LIST
    assert skopeo_raw(f"{registry.host}/lib/docker:v2", "--tls-verify=false") == img.index_bytes
    assert {c.media_type for c in img.children.values()} == {DOCKER_MANIFEST}
    shared_digest = sha256_digest(shared)
    assert all(blobs[1] == shared_digest for blobs in img.platform_blobs.values())
    with pytest.raises(ValueError, match="oci"):
        push_image(registry.url, "lib/docker", "bad", fmt="docker", attestations=True)


def test_access_log_marker_and_counts(registry: LocalRegistry) -> None:
    single = push_single(registry.url, "lib/single", "latest", platform="linux/arm64/v8", layers=3)
    assert len(single.layer_digests) == 3
    assert registry.count("PUT", r"^/v2/lib/single/manifests/latest$") == 1
    assert registry.count("PUT", r"/blobs/uploads/") == 4  # 3 layers + config

    marker = registry.mark()
    with RegistryPusher(registry.url) as client:
        assert client.get_manifest("lib/single", "latest") == single.manifest
        assert client.get_blob("lib/single", single.layer_digests[0]) == single.blobs[single.layer_digests[0]]
    later = registry.requests(since=marker)
    assert [(e.method, e.status) for e in later] == [("GET", 200), ("GET", 200)]
    assert later[1].bytes == 2048
    assert registry.count("GET", r"/manifests/", since=marker) == 1
    assert registry.mark() == marker + 2

    # restart on the same storage keeps the data
    storage = registry.storage_root
    with LocalRegistry(storage_dir=storage) as again:
        with RegistryPusher(again.url) as client:
            assert client.get_manifest("lib/single", "latest") == single.manifest
        assert again.port != 0 and again.storage_root == storage


# -- auth -----------------------------------------------------------------------------------------


def test_htpasswd_registry(registry_factory: RegistryFactory) -> None:
    reg = registry_factory(htpasswd={"alice": "s3cret"})
    resp = httpx.get(f"{reg.url}/v2/")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert httpx.get(f"{reg.url}/v2/", auth=("alice", "s3cret")).status_code == 200
    assert httpx.get(f"{reg.url}/v2/", auth=("alice", "nope")).status_code == 401

    img = push_image(reg.url, "private/app", "v1", auth=("alice", "s3cret"))
    assert (
        skopeo_raw(f"{reg.host}/private/app:v1", "--tls-verify=false", "--creds", "alice:s3cret")
        == img.index_bytes
    )
    with pytest.raises(PermissionError):
        push_blob(reg.url, "private/app", b"x")
    with pytest.raises(RuntimeError, match="401"):
        push_blob(reg.url, "private/app", b"x", auth=("alice", "wrong"))


@pytest.mark.parametrize(("algorithm", "key_header"), [("ES256", "kid"), ("RS256", "x5c")])
def test_token_registry(
    registry_factory: RegistryFactory,
    token_server_factory: TokenServerFactory,
    algorithm: str,
    key_header: str,
) -> None:
    ts = token_server_factory({"bob": "hunter2"}, algorithm=algorithm, key_header=key_header)
    reg = registry_factory(token=ts)
    challenge = httpx.get(f"{reg.url}/v2/").headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{ts.realm}",service="{ts.service}"')

    img = push_image(reg.url, "team/app", "v1", platforms=["linux/amd64"], auth=("bob", "hunter2"))
    with RegistryPusher(reg.url, auth=("bob", "hunter2")) as client:
        assert client.get_manifest("team/app", "v1").data == img.index_bytes
    assert ts.requests, "token server saw no requests"
    first = ts.requests[0]
    expected_basic = "Basic " + base64.b64encode(b"bob:hunter2").decode()
    assert first.header("authorization") == expected_basic
    assert first.status == 200 and first.username == "bob"
    assert first.query["service"] == [ts.service]
    # Distribution lists challenge actions in random order ("pull,push" or "push,pull")
    assert any(set(a["actions"]) == {"pull", "push"} for r in ts.requests for a in r.access)

    # wrong password: the token server says 401, the push fails
    with pytest.raises(PermissionError, match="401"):
        push_blob(reg.url, "team/app", b"data", auth=("bob", "wrong"))
    assert ts.requests[-1].status == 401
    # no credentials and anonymous not allowed: 401 too
    assert httpx.get(ts.realm, params={"service": ts.service}).status_code == 401
    # OAuth2 password grant (POST) works as well
    form = {"grant_type": "password", "username": "bob", "password": "hunter2", "service": ts.service}
    posted = httpx.post(ts.realm, data=form | {"scope": "repository:team/app:pull"})
    assert posted.status_code == 200 and posted.json()["access_token"] == posted.json()["token"]
    assert httpx.post(ts.realm, data=form | {"password": "bad"}).status_code == 401

    # a token signed by a key the registry does not trust is rejected
    with TokenServer({"bob": "hunter2"}, service=ts.service, issuer=ts.issuer) as rogue:
        forged = rogue.issue_token("bob", [{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    resp = httpx.get(f"{reg.url}/v2/team/app/manifests/v1", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401
    good = ts.issue_token("bob", [{"type": "repository", "name": "team/app", "actions": ["pull"]}])
    resp = httpx.get(
        f"{reg.url}/v2/team/app/manifests/v1",
        headers={"Authorization": f"Bearer {good}", "Accept": img.index_media_type},
    )
    assert resp.status_code == 200 and resp.content == img.index_bytes


def test_token_registry_anonymous_pull_only(
    registry_factory: RegistryFactory, token_server_factory: TokenServerFactory
) -> None:
    ts = token_server_factory({"bob": "pw"}, allow_anonymous=True)
    reg = registry_factory(token=ts)
    single = push_single(reg.url, "pub/app", "v1", auth=("bob", "pw"))
    with RegistryPusher(reg.url) as anon:
        assert anon.get_manifest("pub/app", "v1") == single.manifest
        with pytest.raises(RuntimeError, match="401"):
            anon.push_blob("pub/app", b"anonymous bytes")
    anon_reqs = [r for r in ts.requests if r.username is None]
    assert anon_reqs and all(a["actions"] in (["pull"], []) for r in anon_reqs for a in r.access)


def test_tls_registry(registry_factory: RegistryFactory, tmp_path: Path) -> None:
    reg = registry_factory(tls=True)
    assert reg.url.startswith("https://127.0.0.1:") and reg.ca_pem_path is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{reg.url}/v2/")
    ctx = ssl.create_default_context(cafile=str(reg.ca_pem_path))
    assert httpx.get(f"{reg.url}/v2/", verify=ctx).status_code == 200
    assert httpx.get(f"https://localhost:{reg.port}/v2/", verify=reg.verify).status_code == 200

    img = push_image(reg.url, "secure/app", "v1", verify=str(reg.ca_pem_path))
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    shutil.copy(reg.ca_pem_path, cert_dir / "ca.crt")
    assert skopeo_raw(f"{reg.host}/secure/app:v1", "--cert-dir", str(cert_dir)) == img.index_bytes


# -- redirect proxy -------------------------------------------------------------------------------


@pytest.fixture
def proxy(registry: LocalRegistry) -> Iterator[RedirectingProxy]:
    with RedirectingProxy(registry) as p:
        yield p


def test_redirecting_proxy(registry: LocalRegistry, proxy: RedirectingProxy) -> None:
    # pushing through the proxy exercises forwarded POST/PUT and Location rewriting
    single = push_single(proxy.url, "via/proxy", "v1", layer_size=300_000)
    assert skopeo_raw(f"{registry.host}/via/proxy:v1", "--tls-verify=false") == single.manifest.data
    assert proxy.redirects == []

    layer = single.layer_digests[0]
    resp = httpx.get(f"{proxy.url}/v2/via/proxy/blobs/{layer}", headers={"Authorization": "Bearer xyz"})
    assert resp.status_code == 307
    location = resp.headers["Location"]
    assert location == f"http://localhost:{proxy.blob_server.port}/blob/{layer}"
    assert proxy.redirects == [layer]

    followed = httpx.get(f"{proxy.url}/v2/via/proxy/blobs/{layer}", follow_redirects=True)
    assert followed.content == single.blobs[layer]
    assert followed.url.host == "localhost"
    recorded = proxy.blob_server.requests[-1]
    assert recorded.path == f"/blob/{layer}" and recorded.header("Host") == proxy.blob_server.host

    ranged = httpx.get(location, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == single.blobs[layer][10:20]

    head = httpx.head(f"{proxy.url}/v2/via/proxy/blobs/{layer}")  # HEAD is forwarded, not redirected
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(single.blobs[layer]))
    missing = httpx.get(f"{proxy.url}/v2/via/proxy/blobs/sha256:{'0' * 64}")
    assert missing.status_code == 404 and "BLOB_UNKNOWN" in missing.text


def test_redirecting_proxy_chunked_upload_and_auth(registry_factory: RegistryFactory) -> None:
    reg = registry_factory(htpasswd={"u": "p"})
    with RedirectingProxy(reg) as proxy:
        resp = httpx.get(f"{proxy.url}/v2/x/blobs/sha256:{'1' * 64}")
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")

        data = os.urandom(200_000)
        with httpx.Client(auth=("u", "p")) as client:
            start = client.post(f"{proxy.url}/v2/chunky/blobs/uploads/")
            assert start.status_code == 202 and start.headers["Location"].startswith(proxy.url)
            chunks = iter([data[:70_000], data[70_000:]])
            patched = client.patch(start.headers["Location"], content=chunks)  # chunked request body
            assert patched.status_code == 202, patched.text
            # NB: httpx 0.28 `params=` would *replace* the _state query; merge instead
            put_url = httpx.URL(patched.headers["Location"]).copy_merge_params(
                {"digest": sha256_digest(data)}
            )
            done = client.put(put_url)
            assert done.status_code == 201, done.text
            got = client.get(f"{proxy.url}/v2/chunky/blobs/{sha256_digest(data)}", follow_redirects=True)
        assert got.content == data
        assert proxy.blob_server.requests[-1].header("Authorization") is None  # not leaked cross-host


def test_header_recording_blob_server_standalone() -> None:
    with HeaderRecordingBlobServer() as server:
        digest = server.add(b"hello")
        resp = httpx.get(server.url_for(digest), headers={"X-Probe": "1"})
        assert resp.content == b"hello"
        assert httpx.get(f"{server.url}/blob/sha256:{'2' * 64}").status_code == 404
    assert server.requests[0].header("x-probe") == "1"


# -- fixtures & policy ----------------------------------------------------------------------------


def test_docker_config_fixture(docker_config: DockerConfigFactory, tmp_path: Path) -> None:
    config_dir = docker_config({"127.0.0.1:5000": ("alice", "pw")})
    assert os.environ["DOCKER_CONFIG"] == str(config_dir)
    assert Path(os.environ["HOME"]).is_relative_to(tmp_path) and not any(Path.home().iterdir())
    auths = json.loads((config_dir / "config.json").read_text())["auths"]
    assert base64.b64decode(auths["127.0.0.1:5000"]["auth"]) == b"alice:pw"


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_binary_policy(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install docker-registry"):
        request.getfixturevalue("registry_factory")
    with pytest.raises(RuntimeError, match="apt-get install docker-registry"):
        LocalRegistry().start()
