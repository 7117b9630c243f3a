"""`copy` with OCI layouts and archives on either side, against real registries; skopeo reads them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import httpx
import pytest
from tools import require_tool

from devtools.images import push_image, push_single
from devtools.registry import LocalRegistry
from docker_transfer.cli import main
from docker_transfer.manifest import ACCEPT_MANIFESTS, OCI_MANIFEST, SOURCE_DIGEST_ANNOTATION, sha256_digest

REF_NAME = "org.opencontainers.image.ref.name"
LIST_ACCEPT = ", ".join(ACCEPT_MANIFESTS)
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def insecure(*regs: LocalRegistry) -> list[str]:
    return [flag for reg in regs for flag in ("--insecure-registry", reg.host)]


def fetch_manifest(reg: LocalRegistry, repo: str, ref: str) -> tuple[int, bytes, str]:
    resp = httpx.get(f"{reg.url}/v2/{repo}/manifests/{ref}", headers={"Accept": LIST_ACCEPT})
    return resp.status_code, resp.content, resp.headers.get("Docker-Content-Digest", "")


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    require_tool("skopeo")
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args], check=True, capture_output=True, text=True, timeout=120
    )


def skopeo_raw(ref: str) -> bytes:
    return skopeo("inspect", "--raw", ref).stdout.encode()


def index_of(layout: Path) -> dict[str, object]:
    return dict(json.loads((layout / "index.json").read_text()))


def test_registry_to_oci_dir_and_back_keeps_digests(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(a.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"], attestations=True)
    layout = tmp_path / "layout"
    code, _, err = run_cli(capsys, "copy", f"{a.host}/lib/app:1.0", f"oci:{layout}:v1", *insecure(a))
    assert code == 0, err
    entries = index_of(layout)["manifests"]
    assert entries == [
        {
            "mediaType": src.index_media_type,
            "digest": src.index_digest,
            "size": len(src.index_bytes),
            "annotations": {REF_NAME: "v1"},
        }
    ]
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    # skopeo, the independent reader: the index bytes, and a full copy of every platform into b.
    assert skopeo_raw(f"oci:{layout}:v1") == src.index_bytes
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{layout}:v1",
        f"docker://{b.host}/skopeo/app:v1",
    )
    assert fetch_manifest(b, "skopeo/app", "v1")[2] == src.index_digest
    # ...and back into a registry with docker-transfer: same digests, children byte-identical.
    code, _, err = run_cli(capsys, "copy", f"oci:{layout}:v1", f"{b.host}/back/app:v1", *insecure(b))
    assert code == 0, err
    assert fetch_manifest(b, "back/app", "v1")[2] == src.index_digest
    for child in src.children.values():
        assert fetch_manifest(b, "back/app", child.digest)[1] == child.data


def test_oci_dir_select_one_platform_is_filtered_and_annotated(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = push_image(registry.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"])
    layout = tmp_path / "layout"
    code, _, err = run_cli(
        capsys,
        "copy",
        f"{registry.host}/lib/app:1.0",
        f"oci:{layout}:v1",
        "--arch",
        "arm64",
        *insecure(registry),
    )
    assert code == 0, err
    raw = skopeo_raw(f"oci:{layout}:v1")
    doc = json.loads(raw)
    assert [m["digest"] for m in doc["manifests"]] == [src.children["linux/arm64/v8"].digest]
    assert doc["annotations"][SOURCE_DIGEST_ANNOTATION] == src.index_digest
    amd64_blobs = src.platform_blobs["linux/amd64"]
    assert not any((layout / "blobs" / "sha256" / d[7:]).exists() for d in amd64_blobs)


def test_we_read_an_oci_layout_skopeo_wrote(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(a.url, "lib/app", "2", platforms=["linux/amd64", "linux/arm/v7"], fmt="docker")
    layout = tmp_path / "skopeo-layout"
    # skopeo converts the Docker list to an OCI index on the way into a layout.
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{a.host}/lib/app:2", f"oci:{layout}:two")
    theirs = skopeo_raw(f"oci:{layout}:two")
    code, _, err = run_cli(capsys, "copy", f"oci:{layout}:two", f"{b.host}/from/skopeo", *insecure(b))
    assert code == 0, err
    status, body, _ = fetch_manifest(b, "from/skopeo", "two")
    assert status == 200 and body == theirs
    assert len(json.loads(body)["manifests"]) == len(src.children)


def test_oci_archive_both_ways_and_skopeo_reads_it(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(a.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"], attestations=True)
    archive = tmp_path / "app.tar"
    code, _, err = run_cli(capsys, "copy", f"{a.host}/lib/app:1.0", f"oci-archive:{archive}:v1", *insecure(a))
    assert code == 0, err
    assert not list(tmp_path.glob(".app.tar.tmp-*"))
    assert skopeo_raw(f"oci-archive:{archive}:v1") == src.index_bytes
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci-archive:{archive}:v1",
        f"docker://{b.host}/sk/app:v1",
    )
    assert fetch_manifest(b, "sk/app", "v1")[2] == src.index_digest
    code, _, err = run_cli(capsys, "copy", f"oci-archive:{archive}", f"{b.host}/back/app:v1", *insecure(b))
    assert code == 0, err
    assert fetch_manifest(b, "back/app", "v1")[2] == src.index_digest
    # and an oci-archive skopeo wrote
    theirs = tmp_path / "theirs.tar"
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        f"docker://{a.host}/lib/app:1.0",
        f"oci-archive:{theirs}:x",
    )
    code, _, err = run_cli(capsys, "copy", f"oci-archive:{theirs}:x", f"{b.host}/theirs/app:x", *insecure(b))
    assert code == 0, err
    assert fetch_manifest(b, "theirs/app", "x")[2] == src.index_digest


def test_docker_archive_single_platform_loadable_format(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(a.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"], fmt="docker")
    archive = tmp_path / "app.tar"
    code, _, err = run_cli(
        capsys,
        "copy",
        f"{a.host}/lib/app:1.0",
        f"docker-archive:{archive}:app:1.0",
        "--arch",
        "arm64",
        *insecure(a),
    )
    assert code == 0, err
    child = src.children["linux/arm64/v8"]
    config_digest, *layer_digests = src.platform_blobs["linux/arm64/v8"]
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        repositories = json.loads(tar.extractfile("repositories").read())  # type: ignore[union-attr]
    # What `docker load` needs: manifest.json naming Config/Layers/RepoTags, files present, repositories.
    assert manifest == [
        {
            "Config": f"blobs/sha256/{config_digest[7:]}",
            "RepoTags": ["app:1.0"],
            "Layers": [f"blobs/sha256/{d[7:]}" for d in layer_digests],
        }
    ]
    assert {manifest[0]["Config"], *manifest[0]["Layers"]} <= names
    assert repositories == {"app": {"1.0": layer_digests[-1][7:]}}
    # skopeo reads it; and docker-transfer loads it back with the original manifest digest.
    assert json.loads(skopeo("inspect", f"docker-archive:{archive}").stdout)["Architecture"] == "arm64"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{b.host}/sk/app:1.0")
    pushed = json.loads(fetch_manifest(b, "sk/app", "1.0")[1])
    assert pushed["config"]["digest"] == config_digest
    assert len(pushed["layers"]) == len(layer_digests)  # skopeo gzips the plain-tar layers on the way
    code, _, err = run_cli(
        capsys, "copy", f"docker-archive:{archive}", f"{b.host}/back/app:1.0", *insecure(b)
    )
    assert code == 0, err
    assert fetch_manifest(b, "back/app", "1.0")[2] == child.digest


def test_docker_archive_refuses_several_platforms(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    push_image(registry.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"])
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "app.tar"
    code, _, err = run_cli(
        capsys, "copy", f"{registry.host}/lib/app:1.0", f"docker-archive:{archive}", *insecure(registry)
    )
    assert code == 2
    assert "pick one with --arch" in err and "oci-archive" in err
    assert not list(out.iterdir())  # nothing written, not even a temporary file
    # Without FILE:REPO:TAG the archive names the source, as `docker save IMAGE` does.
    args = ("copy", f"{registry.host}/lib/app:1.0", f"docker-archive:{archive}", "--arch", "amd64")
    assert run_cli(capsys, *args, *insecure(registry))[0] == 0
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest[0]["RepoTags"] == [f"{registry.host}/lib/app:1.0"]


def test_we_read_a_docker_archive_skopeo_wrote(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    single = push_single(a.url, "lib/one", "v1", fmt="docker")
    archive = tmp_path / "saved.tar"
    skopeo(
        "copy", "--src-tls-verify=false", f"docker://{a.host}/lib/one:v1", f"docker-archive:{archive}:one:v1"
    )
    code, _, err = run_cli(
        capsys, "copy", f"docker-archive:{archive}:one:v1", f"{b.host}/one:v1", *insecure(b)
    )
    assert code == 0, err
    status, body, _ = fetch_manifest(b, "one", "v1")
    assert status == 200
    doc = json.loads(body)
    assert doc["config"]["digest"] == single.config_digest
    assert [layer["digest"] for layer in doc["layers"]] == single.layer_digests


def test_archive_through_a_pipe_stdout_to_stdin(
    two_registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(a.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"])
    cli = [sys.executable, "-m", "docker_transfer"]
    # As over ssh: `docker-transfer copy REG oci-archive:- | ssh far docker-transfer copy oci-archive:- REG`.
    writer = subprocess.Popen(
        [*cli, "copy", f"{a.host}/lib/app:1.0", "oci-archive:-:v1", "--insecure-registry", a.host],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    tee = tmp_path / "seen.tar"
    reader = subprocess.run(
        [*cli, "copy", "oci-archive:-", f"{b.host}/piped/app:v1", "--insecure-registry", b.host],
        stdin=writer.stdout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert writer.stdout is not None
    writer.stdout.close()
    _, werr = writer.communicate(timeout=60)
    assert writer.returncode == 0, werr
    assert reader.returncode == 0, reader.stderr
    assert "copied" in werr.decode()  # the summary went to stderr, not into the archive
    assert fetch_manifest(b, "piped/app", "v1")[2] == src.index_digest
    # The same stream written to a file is an archive skopeo reads.
    with tee.open("wb") as out:
        subprocess.run(
            [*cli, "copy", f"{a.host}/lib/app:1.0", "oci-archive:-:v1", "--insecure-registry", a.host],
            stdout=out,
            check=True,
            timeout=120,
        )
    assert skopeo_raw(f"oci-archive:{tee}:v1") == src.index_bytes


def test_copy_into_an_existing_layout_adds_and_a_repeat_writes_nothing(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one = push_image(registry.url, "lib/one", "1", platforms=["linux/amd64"])
    two = push_single(registry.url, "lib/two", "2")
    layout = tmp_path / "layout"
    for ref in (f"{registry.host}/lib/one:1", f"{registry.host}/lib/two:2"):
        code, _, err = run_cli(capsys, "copy", ref, f"oci:{layout}", *insecure(registry))
        assert code == 0, err
    doc = index_of(layout)
    named = {m["annotations"][REF_NAME]: m["digest"] for m in doc["manifests"]}  # type: ignore[attr-defined]
    assert named == {"1": one.index_digest, "2": two.digest}
    stamp = {p: p.stat().st_mtime_ns for p in layout.rglob("*")}
    code, out, err = run_cli(
        capsys, "copy", f"{registry.host}/lib/two:2", f"oci:{layout}", *insecure(registry)
    )
    assert code == 0, err
    assert "0 written" in out
    assert {p: p.stat().st_mtime_ns for p in layout.rglob("*")} == stamp


def _copy_from_stdin(
    data: bytes, src: str, dest: str, reg: LocalRegistry
) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "docker_transfer", "copy", src, dest, "--insecure-registry", reg.host]
    return subprocess.run(cmd, input=data, capture_output=True, timeout=120, check=False)


def test_stdin_is_read_in_one_pass_when_the_order_allows(
    two_registries: tuple[LocalRegistry, LocalRegistry], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = two_registries
    src = push_image(a.url, "lib/app", "1.0", platforms=["linux/amd64", "linux/arm64/v8"], layer_size=6 << 20)
    ours = tmp_path / "ours.tar"
    docker = tmp_path / "docker.tar"
    assert run_cli(capsys, "copy", f"{a.host}/lib/app:1.0", f"oci-archive:{ours}:v1", *insecure(a))[0] == 0
    args = (f"{a.host}/lib/app:1.0", f"docker-archive:{docker}:app:1", "--arch", "arm64", *insecure(a))
    assert run_cli(capsys, "copy", *args)[0] == 0
    # Ours: index and manifests first, then blobs in the order a reader asks for them.
    with tarfile.open(ours) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names.index("index.json") < min(i for i, m in enumerate(members) if m.size > 1 << 20)
    done = _copy_from_stdin(ours.read_bytes(), "oci-archive:-", f"{b.host}/piped/app:v1", b)
    assert done.returncode == 0, done.stderr
    assert fetch_manifest(b, "piped/app", "v1")[2] == src.index_digest
    done = _copy_from_stdin(docker.read_bytes(), "docker-archive:-", f"{b.host}/piped/docker:1", b)
    assert done.returncode == 0, done.stderr
    assert fetch_manifest(b, "piped/docker", "1")[2] == src.children["linux/arm64/v8"].digest
    # Cut short: a clear error and no manifest written.
    mark = b.mark()
    cut = ours.read_bytes()[: ours.stat().st_size - (3 << 20)]
    done = _copy_from_stdin(cut, "oci-archive:-", f"{b.host}/cut/app:v1", b)
    assert done.returncode == 1
    assert b"truncated" in done.stderr and b"internal error" not in done.stderr
    assert b.count("PUT", r"/manifests/", since=mark) == 0


def test_stdin_archive_with_index_after_blobs_is_refused(
    two_registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path
) -> None:
    a, b = two_registries
    push_image(a.url, "lib/app", "1.0", platforms=["linux/amd64"], layer_size=6 << 20)
    theirs = tmp_path / "theirs.tar"
    skopeo(
        "copy", "--all", "--src-tls-verify=false", f"docker://{a.host}/lib/app:1.0", f"oci-archive:{theirs}:x"
    )
    done = _copy_from_stdin(theirs.read_bytes(), "oci-archive:-", f"{b.host}/x/app:x", b)
    assert done.returncode == 1
    assert b"needs random access; save it to a file" in done.stderr
    assert not [e for e in b.requests() if e.method in ("PUT", "POST", "PATCH")]


def _real_image_layout(root: Path) -> None:
    """A layout whose layer is a real tar (podman unpacks it), named v1."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello from docker-transfer\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    rootfs = {"type": "layers", "diff_ids": [sha256_digest(layer)]}
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(layer), "size": len(layer)}],
        }
    ).encode()
    (root / "blobs" / "sha256").mkdir(parents=True)
    for blob in (layer, config, manifest):
        (root / "blobs" / "sha256" / sha256_digest(blob)[7:]).write_bytes(blob)
    entry = {"mediaType": OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest)}
    entry["annotations"] = {REF_NAME: "v1"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


def test_podman_loads_our_archives(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    require_tool("podman")
    layout = tmp_path / "layout"
    _real_image_layout(layout)
    docker, oci = tmp_path / "d.tar", tmp_path / "o.tar"
    assert (
        run_cli(capsys, "copy", f"oci:{layout}:v1", f"docker-archive:{docker}:example.com/hello:v1")[0] == 0
    )
    assert run_cli(capsys, "copy", f"oci:{layout}:v1", f"oci-archive:{oci}:example.com/hello:oci")[0] == 0
    # podman wants a short runroot; its own storage stays in this test's directories.
    with tempfile.TemporaryDirectory(prefix="dt-podman-") as run:
        podman = ["podman", "--root", str(tmp_path / "root"), "--runroot", run, "--storage-driver", "vfs"]
        podman += ["--cgroup-manager", "cgroupfs", "--events-backend", "none"]
        for archive in (docker, oci):
            done = subprocess.run(
                [*podman, "load", "-i", str(archive)],
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
        images = [*podman, "images", "--format", "{{.Repository}}:{{.Tag}}"]
        listed = subprocess.run(images, check=True, capture_output=True, text=True, timeout=60)
    assert {"example.com/hello:v1", "example.com/hello:oci"} <= set(listed.stdout.split())
