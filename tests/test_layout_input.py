"""Bad layouts and archives: a clear one-line error, nothing written at the destination or outside it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import tarfile
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.images import push_image
from devtools.registry import LocalRegistry
from docker_transfer.cli import main
from docker_transfer.errors import DockerTransferError, InvalidReferenceError, LayoutError
from docker_transfer.layout import tarfmt
from docker_transfer.layout.files import TarFiles
from docker_transfer.layout.names import blob_path, parse_location, safe_member
from docker_transfer.layout.readers import OciReader
from docker_transfer.layout.stream import StreamFiles
from docker_transfer.manifest import OCI_MANIFEST, sha256_digest
from docker_transfer.registry.upload import VerifiedStream


def make_layout(root: Path, *, layer: bytes = b"layer-bytes" * 100) -> dict[str, bytes]:
    """A one-image OCI layout written by hand (named v1); returns its files by relative name."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256_digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256_digest(manifest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for blob in (config, layer, manifest):
        files[blob_path(sha256_digest(blob))] = blob
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def make_tar(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> None:  # type: ignore[assignment]
    with tarfile.open(path, "w") as tar:
        for info in extra:
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def copy(capsys: pytest.CaptureFixture[str], src: str, dst: str, *extra: str) -> tuple[int, str]:
    code = main(["copy", src, dst, *extra])
    _, err = capsys.readouterr()
    return code, err


def test_blob_not_matching_its_digest_writes_nothing(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = make_layout(src)
    layer_name = next(n for n, d in files.items() if d.startswith(b"layer-bytes"))
    (src / layer_name).write_bytes(b"X" + files[layer_name][1:])  # same size, one byte changed
    dest = tmp_path / "dest"
    code, err = copy(capsys, f"oci:{src}:v1", f"oci:{dest}:v1")
    assert code == 1
    assert "digest mismatch" in err and "internal error" not in err
    assert not dest.exists()
    code, err = copy(
        capsys, f"oci:{src}:v1", f"{registry.host}/x/app:v1", "--insecure-registry", registry.host
    )
    assert code == 1 and "digest mismatch" in err
    assert registry.count("PUT", r"/manifests/") == 0
    # The bad layer never completed an upload: the registry does not hold it.
    layer_digest = "sha256:" + layer_name.rsplit("/", 1)[1]
    assert httpx.head(f"{registry.url}/v2/x/app/blobs/{layer_digest}").status_code == 404


def test_missing_index_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_layout(src)
    (src / "index.json").unlink()
    code, err = copy(capsys, f"oci:{src}", f"oci:{tmp_path / 'dest'}")
    assert code == 1
    assert "no index.json" in err
    assert not (tmp_path / "dest").exists()


def test_truncated_archive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_layout(src, layer=os.urandom(64 * 1024))
    archive = tmp_path / "a.tar"
    make_tar(archive, files)
    data = archive.read_bytes()
    # Cut in the middle of the last member's data (index.json and oci-layout come last).
    archive.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "dest"
    code, err = copy(capsys, f"oci-archive:{archive}", f"oci:{dest}")
    assert code == 1
    assert "truncated archive" in err
    assert not dest.exists()


def test_dotdot_member_is_refused_and_nothing_lands_outside(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = make_layout(src)
    files["../../evil"] = b"owned"
    archive = tmp_path / "work" / "a.tar"
    archive.parent.mkdir()
    make_tar(archive, files)
    code, err = copy(capsys, f"oci-archive:{archive}", f"oci:{tmp_path / 'work' / 'dest'}")
    assert code == 1
    assert "outside the archive" in " ".join(err.split())  # the error line may wrap at 120 columns
    assert not list(tmp_path.rglob("evil"))
    assert not (tmp_path / "work" / "dest").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../etc/passwd"])
def test_symlink_out_of_archive_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str
) -> None:
    src = tmp_path / "src"
    files = make_layout(src)
    link = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
    link.type = tarfile.SYMTYPE
    link.linkname = target
    archive = tmp_path / "a.tar"
    make_tar(archive, files, [link])
    code, err = copy(capsys, f"oci-archive:{archive}", f"oci:{tmp_path / 'dest'}")
    assert code == 1
    assert "outside the archive" in " ".join(err.split())  # the error line may wrap at 120 columns
    assert not (tmp_path / "dest").exists()


def test_symlinked_blob_out_of_layout_dir_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = make_layout(src)
    layer_name = next(n for n, d in files.items() if d.startswith(b"layer-bytes"))
    outside = tmp_path / "outside"
    outside.write_bytes(files[layer_name])
    (src / layer_name).unlink()
    (src / layer_name).symlink_to(outside)
    code, err = copy(capsys, f"oci:{src}:v1", f"oci:{tmp_path / 'dest'}")
    assert code == 1
    assert "outside the layout" in err


def test_refuses_to_write_into_a_directory_that_is_not_a_layout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_layout(src)
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    code, err = copy(capsys, f"oci:{src}:v1", f"oci:{home}")
    assert code == 1
    assert "not an OCI layout" in err
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt"]


def test_layout_to_layout_and_archive_to_layout_round_trip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = make_layout(src)
    archive = tmp_path / "a.tar"
    assert copy(capsys, f"oci:{src}:v1", f"oci-archive:{archive}:v2")[0] == 0
    dest = tmp_path / "dest"
    assert copy(capsys, f"oci-archive:{archive}:v2", f"oci:{dest}")[0] == 0
    for name, data in files.items():
        if name.startswith("blobs/"):
            assert (dest / name).read_bytes() == data


def test_tar_headers_are_what_tarfile_reads() -> None:
    data = os.urandom(1000)
    stream = (
        tarfmt.member("blobs/sha256/" + "a" * 64, data)
        + tarfmt.member("x" * 150, b"")
        + tarfmt.END_OF_ARCHIVE
    )
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["blobs/sha256/" + "a" * 64, "x" * 150]
        assert tar.extractfile(members[0]).read() == data  # type: ignore[union-attr]
    assert len(stream) % 512 == 0


def test_parse_location() -> None:
    assert parse_location("oci:/srv/l:nginx:1.25").ref_name == "nginx:1.25"
    assert parse_location("oci:/srv/l").ref_name is None
    loc = parse_location("docker-archive:x.tar:busybox:1")
    assert str(loc.repo_tag) == "docker.io/library/busybox:1"
    assert parse_location("oci:5000/a").is_registry
    assert parse_location("docker://busybox").is_registry
    for bad in ("oci:", "oci:/x:", "oci:-", "oci:/x:bad name", "docker-archive:x.tar:a@sha256:" + "0" * 64):
        with pytest.raises(InvalidReferenceError):
            parse_location(bad)


@given(st.text(max_size=40))
def test_safe_member_never_escapes(name: str) -> None:
    try:
        normal = safe_member(name)
    except LayoutError:
        return
    assert not normal.startswith("/")
    assert ".." not in normal.split("/")
    assert "\x00" not in normal


def _archive_bytes(tmp: Path) -> bytes:
    src = tmp / "src"
    if not src.exists():
        make_layout(src)
    archive = tmp / "good.tar"
    if not archive.exists():
        files = {p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
        make_tar(archive, files)
    return archive.read_bytes()


@pytest.mark.parametrize("stream", [False, True], ids=["file", "stdin"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_archives_fail_with_our_errors_only(
    tmp_path: Path, stream: bool, data: st.DataObject
) -> None:
    """Random truncations and byte changes: either the image reads back whole, or a DockerTransferError."""
    good = _archive_bytes(tmp_path)
    damaged = bytearray(good[: data.draw(st.integers(0, len(good)), label="cut")])
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if damaged:
            at = data.draw(st.integers(0, len(damaged) - 1))
            damaged[at] = data.draw(st.integers(0, 255))
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(damaged))

    async def read_all_blobs() -> None:
        with path.open("rb") as handle:
            files = StreamFiles(io.BytesIO(handle.read())) if stream else TarFiles(str(path))
        reader = OciReader(files, None)
        try:
            top = await reader.top()
            for blob in top.blobs:
                async for _ in VerifiedStream(reader.blob_chunks(blob), blob.digest, blob.size, None):
                    pass
        finally:
            await reader.close()

    with contextlib.suppress(DockerTransferError):
        asyncio.run(read_all_blobs())


def test_source_failing_mid_copy_leaves_no_archive_or_layout(
    registry: LocalRegistry, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = push_image(registry.url, "lib/app", "1", platforms=["linux/amd64", "linux/arm64/v8"])
    registry.blob_data_path(src.platform_blobs["linux/arm64/v8"][-1]).unlink()
    out = tmp_path / "out"
    out.mkdir()
    flags = ("--insecure-registry", registry.host)
    for dest in (f"oci-archive:{out / 'a.tar'}", f"docker-archive:{out / 'd.tar'}", f"oci:{out / 'layout'}"):
        extra = ("--arch", "arm64") if dest.startswith("docker") else ()
        code, err = copy(capsys, f"{registry.host}/lib/app:1", dest, *flags, *extra)
        assert code == 1, dest
        assert "internal error" not in err
    assert not list(out.iterdir())


@given(st.text(max_size=60))
def test_parse_location_raises_only_reference_errors(text: str) -> None:
    try:
        location = parse_location(text)
    except InvalidReferenceError:
        return
    if not location.is_registry:
        assert location.path and ":" not in location.path  # the path ends at the first colon


@pytest.mark.parametrize(
    "body", [b"[" * 100_000, b"not json", b"{}", b"[]", b'[{"Config": 1, "Layers": []}]']
)
def test_bad_docker_manifest_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, body: bytes) -> None:
    archive = tmp_path / "d.tar"
    make_tar(archive, {"manifest.json": body})
    code, err = copy(capsys, f"docker-archive:{archive}", f"oci:{tmp_path / 'dest'}")
    assert code == 1
    assert "manifest.json" in err and "internal error" not in err
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("name", ["\\", "\\etc\\passwd", "C:\\x", "a/../../b", "/abs", "a\x00b"])
def test_safe_member_examples(name: str) -> None:
    with pytest.raises(LayoutError):
        safe_member(name)
