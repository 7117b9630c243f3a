"""End-to-end `docker-transfer copy` and `inspect` against real docker-registry processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devtools.images import PushedImage, RegistryPusher, push_image, push_single
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.engine.blobs import BlobTracker
from docker_transfer.engine.copy import Copier
from docker_transfer.manifest import DOCKER_MANIFEST_LIST, OCI_INDEX, SOURCE_DIGEST_ANNOTATION
from docker_transfer.reference import parse_reference
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.transport import TransportOptions

LIST_ACCEPT = ", ".join(
    [
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def insecure(*regs: LocalRegistry) -> list[str]:
    flags: list[str] = []
    for reg in regs:
        flags += ["--insecure-registry", reg.host]
    return flags


def fetch_manifest(reg: LocalRegistry, repo: str, ref: str) -> tuple[int, bytes, str]:
    resp = httpx.get(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": LIST_ACCEPT})
    return resp.status_code, resp.content, resp.headers.get("Docker-Content-Digest", "")


def skopeo_pull_all(reg: LocalRegistry, image: str, dest: Path) -> None:
    subprocess.run(
        ["skopeo", "copy", "--all", "--src-tls-verify=false", f"docker://{reg.host}/{image}", f"oci:{dest}"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def assert_filtered(src: PushedImage, index_bytes: bytes, kept: list[str]) -> dict[str, object]:
    doc = json.loads(index_bytes)
    source_doc = json.loads(src.index_bytes)
    assert doc["mediaType"] == source_doc["mediaType"]
    children = [m for m in doc["manifests"] if m.get("platform", {}).get("os") != "unknown"]
    assert [c["digest"] for c in children] == [src.children[p].digest for p in kept]
    source_entries = {m["digest"]: m for m in source_doc["manifests"]}
    for entry in doc["manifests"]:
        assert entry == source_entries[entry["digest"]]  # descriptors unchanged
    assert doc["annotations"][SOURCE_DIGEST_ANNOTATION] == src.index_digest
    return dict(doc)


def test_oci_index_three_platforms_select_two(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(
        a.url,
        "lib/app",
        "1.0",
        platforms=["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
        attestations=True,
    )
    code, out, err = run_cli(
        capsys,
        "copy",
        f"docker://{a.host}/lib/app:1.0",
        f"{b.host}/mirror/app:1.0",
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        "--tag",
        "latest",
        *insecure(a, b),
    )
    assert code == 0, err
    status, body, digest = fetch_manifest(b, "mirror/app", "1.0")
    assert status == 200
    doc = assert_filtered(src, body, ["linux/amd64", "linux/arm64/v8"])
    attested = [m for m in doc["manifests"] if m.get("platform", {}).get("os") == "unknown"]  # type: ignore[attr-defined]
    assert {m["annotations"]["vnd.docker.reference.digest"] for m in attested} == {
        src.children["linux/amd64"].digest,
        src.children["linux/arm64/v8"].digest,
    }
    assert fetch_manifest(b, "mirror/app", "latest")[2] == digest
    for platform in ("linux/amd64", "linux/arm64/v8"):
        child = src.children[platform]
        st, data, _ = fetch_manifest(b, "mirror/app", child.digest)
        assert st == 200 and data == child.data  # byte-identical child
    # arm/v7's manifest was not pushed
    assert fetch_manifest(b, "mirror/app", src.children["linux/arm/v7"].digest)[0] == 404
    skopeo_pull_all(b, "mirror/app:latest", tmp_path / "oci")
    assert digest in out


def test_docker_list_four_platforms_select_two(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le"]
    src = push_image(a.url, "lib/tool", "v2", platforms=platforms, fmt="docker")
    code, _, err = run_cli(
        capsys,
        "copy",
        f"{a.host}/lib/tool:v2",
        f"{b.host}/tool",
        "--arch",
        "arm/v7",
        "--arch",
        "ppc64le",
        *insecure(a, b),
    )
    assert code == 0, err
    status, body, _ = fetch_manifest(b, "tool", "v2")  # tag taken from the source
    assert status == 200
    assert json.loads(body)["mediaType"] == DOCKER_MANIFEST_LIST
    assert_filtered(src, body, ["linux/arm/v7", "linux/ppc64le"])
    skopeo_pull_all(b, "tool:v2", tmp_path / "oci")


def test_full_selection_single_platform_and_digest_source_keep_digests(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_registries
    src = push_image(a.url, "multi", "1", platforms=["linux/amd64", "linux/arm64/v8"], attestations=True)
    single = push_single(a.url, "single", "1", platform="linux/arm64/v8", fmt="docker")

    code, _, err = run_cli(capsys, "copy", f"{a.host}/multi:1", f"{b.host}/multi:1", "--all", *insecure(a, b))
    assert code == 0, err
    assert fetch_manifest(b, "multi", "1")[1] == src.index_bytes

    # Asking for every platform by name still pushes the source bytes unchanged... except attestations,
    # which follow their platform: selecting both platforms keeps everything.
    code, _, err = run_cli(
        capsys,
        "copy",
        f"{a.host}/multi:1",
        f"{b.host}/multi:named",
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        *insecure(a, b),
    )
    assert code == 0, err
    assert fetch_manifest(b, "multi", "named")[2] == src.index_digest

    code, _, err = run_cli(
        capsys, "copy", f"{a.host}/single:1", f"{b.host}/single:1", "--arch", "arm64", *insecure(a, b)
    )
    assert code == 0, err
    assert fetch_manifest(b, "single", "1")[2] == single.digest

    code, _, err = run_cli(
        capsys, "copy", f"{a.host}/multi@{src.index_digest}", f"{b.host}/pinned:v1", *insecure(a, b)
    )
    assert code == 0, err
    assert fetch_manifest(b, "pinned", "v1")[2] == src.index_digest


def test_single_platform_mismatch_fails_and_names_platform(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_registries
    push_single(a.url, "single", "1", platform="linux/amd64")
    code, _, err = run_cli(
        capsys, "copy", f"{a.host}/single:1", f"{b.host}/single:1", "--arch", "arm64", *insecure(a, b)
    )
    assert code == 1
    assert "linux/arm64" in err and "linux/amd64" in err
    assert fetch_manifest(b, "single", "1")[0] == 404


def test_missing_platform_writes_no_tag(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_registries
    push_image(a.url, "app", "1", platforms=["linux/amd64", "linux/arm64/v8"])
    code, _, err = run_cli(
        capsys,
        "copy",
        f"{a.host}/app:1",
        f"{b.host}/app:1",
        "--arch",
        "amd64",
        "--arch",
        "s390x",
        *insecure(a, b),
    )
    assert code == 1
    assert "linux/s390x" in err and "Traceback" not in err
    assert fetch_manifest(b, "app", "1")[0] == 404


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["layer", "child-manifest", "index"])
def test_altered_storage_is_caught_and_tag_absent(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], what: str
) -> None:
    a, b = two_registries
    src = push_image(a.url, "app", "1", platforms=["linux/amd64", "linux/arm64/v8"], layer_size=4096)
    if what == "layer":
        digest = src.platform_blobs["linux/arm64/v8"][-1]
    elif what == "child-manifest":
        digest = src.children["linux/amd64"].digest
    else:
        digest = src.index_digest
    _tamper(a.blob_data_path(digest))
    code, _, err = run_cli(
        capsys,
        "copy",
        f"{a.host}/app:1",
        f"{b.host}/app:1",
        "--arch",
        "amd64",
        "--arch",
        "arm64",
        *insecure(a, b),
    )
    assert code == 1
    assert digest[:19] + "…" in err  # human output names the digest, shortened
    assert "Traceback" not in err
    assert fetch_manifest(b, "app", "1")[0] == 404


def test_inspect_index_and_single(registry: LocalRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    src = push_image(registry.url, "app", "1", platforms=["linux/amd64", "linux/arm/v7"], attestations=True)
    single = push_single(registry.url, "one", "1", platform="linux/s390x")
    code, out, err = run_cli(capsys, "inspect", f"{registry.host}/app:1", "--json", *insecure(registry))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["digest"] == src.index_digest
    assert doc["media_type"] == OCI_INDEX
    assert [(p["platform"], p["digest"]) for p in doc["platforms"]] == [
        ("linux/amd64", src.children["linux/amd64"].digest),
        ("linux/arm/v7", src.children["linux/arm/v7"].digest),
    ]
    expected_size = len(src.children["linux/amd64"].data) + sum(
        len(src.blobs[d]) for d in src.platform_blobs["linux/amd64"]
    )
    assert doc["platforms"][0]["size"] == expected_size
    assert len(doc["attestations"]) == 2

    code, out, _ = run_cli(capsys, "inspect", f"{registry.host}/one:1", *insecure(registry))
    assert code == 0
    assert single.digest in out and "linux/s390x" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "copy", "hub.docker.com/_/nginx", "127.0.0.1:1/x")
    assert code == 2 and "nginx" in err
    code, _, err = run_cli(capsys, "copy", "a/b:1", "127.0.0.1:1/x", "--arch", "x86")
    assert code == 2 and "x86" in err
    code, _, err = run_cli(capsys, "copy", "a/b:1", "127.0.0.1:1/x", "--all", "--arch", "amd64")
    assert code == 2
    code, _, err = run_cli(capsys, "copy", "onlyone")
    assert code == 2


def test_tls_is_not_inferred_for_loopback(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    push_single(registry.url, "one", "1")
    code, _, err = run_cli(capsys, "inspect", f"{registry.host}/one:1")
    assert code == 1
    assert registry.host in err and "Traceback" not in err


def test_console_script_entry_point(registry_factory: RegistryFactory) -> None:
    reg = registry_factory()
    single = push_single(reg.url, "one", "1")
    # The venv's own script, next to this interpreter: PATH may hold none (a fresh clone, env -i).
    script = Path(sys.executable).parent / "docker-transfer"
    assert script.is_file(), f"{script} missing: the package is not installed in this environment"
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [str(script), "inspect", f"{reg.host}/one:1", "--insecure-registry", reg.host],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert single.digest in proc.stdout
    with RegistryPusher(reg.url) as pusher:
        assert pusher.get_manifest("one", "1").digest == single.digest


def test_same_registry_copy_mounts_instead_of_uploading(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    src = push_image(registry.url, "team/app", "1", platforms=["linux/amd64", "linux/arm64/v8"])
    mark = registry.mark()
    code, out, err = run_cli(
        capsys,
        "copy",
        f"{registry.host}/team/app:1",
        f"{registry.host}/other/app:1",
        "--json",
        *insecure(registry),
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["blobs_uploaded"] == 0 and result["blobs_mounted"] == len(
        {d for blobs in src.platform_blobs.values() for d in blobs}
    )
    mounts = [e for e in registry.requests(mark) if e.method == "POST" and "mount=" in (e.query or "")]
    assert mounts and all(e.status == 201 for e in mounts)
    assert registry.count("PUT", r"/blobs/uploads/", mark) == 0
    assert fetch_manifest(registry, "other/app", "1")[2] == src.index_digest


async def test_refused_mount_falls_back_to_upload(
    two_registries: tuple[LocalRegistry, LocalRegistry],
) -> None:
    a, b = two_registries
    src = push_single(a.url, "app", "1")
    tracker = BlobTracker()
    dest = parse_reference(f"{b.host}/mirror/app:1")
    for digest in [src.config_digest, *src.layer_digests]:
        # claim a repository holds the blobs when it does not: Distribution answers the mount with 202
        tracker.remember(dest.api_host, "nowhere/else", digest)
    transport = TransportOptions.create([a.host, b.host], use_env=False)
    mark = b.mark()
    async with RegistryClient(transport, credentials=lambda host: None) as client:
        result = await Copier(client, tracker).copy(parse_reference(f"{a.host}/app:1"), dest, ["1"])
    assert result.blobs_uploaded == 1 + len(src.layer_digests) and result.blobs_mounted == 0
    mounts = [e for e in b.requests(mark) if e.method == "POST" and "mount=" in (e.query or "")]
    assert mounts and all(e.status == 202 for e in mounts)
    # the upload reused the session the refused mount opened: no extra POST without mount
    plain_posts = [e for e in b.requests(mark) if e.method == "POST" and "mount=" not in (e.query or "")]
    assert plain_posts == []
    assert fetch_manifest(b, "mirror/app", "1")[2] == src.digest


def test_copy_rerun_is_head_only_unless_forced(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_registries
    src = push_image(a.url, "app", "1", platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"])
    args = ["copy", f"{a.host}/app:1", f"{b.host}/app:1", "--arch", "amd64", "--arch", "arm64", "--json"]
    code, out, err = run_cli(capsys, *args, *insecure(a, b))
    assert code == 0, err
    first = json.loads(out)
    assert first["status"] == "copied"

    mark_a, mark_b = a.mark(), b.mark()
    code, out, err = run_cli(capsys, *args, *insecure(a, b))
    assert code == 0, err
    again = json.loads(out)
    assert again["status"] == "unchanged" and again["digest"] == first["digest"]
    assert a.count("GET", r"/manifests/|/blobs/", mark_a) == 0
    assert a.count("HEAD", r"/manifests/", mark_a) == 1
    assert sum(1 for e in b.requests(mark_b) if e.method in ("POST", "PUT", "PATCH")) == 0

    # a different platform choice is not "unchanged", and --force copies regardless
    code, out, _ = run_cli(capsys, "copy", f"{a.host}/app:1", f"{b.host}/app:1", "--json", *insecure(a, b))
    assert json.loads(out)["status"] == "copied" and json.loads(out)["digest"] == src.index_digest
    mark_a = a.mark()
    code, out, _ = run_cli(
        capsys, "copy", f"{a.host}/app:1", f"{b.host}/app:1", "--json", "--force", *insecure(a, b)
    )
    assert code == 0 and json.loads(out)["status"] == "copied"
    assert a.count("GET", r"/manifests/", mark_a) >= 1
