"""The engine on docker_transfer.testing.FakeRegistry: dedupe, partial publish, incremental
checks, failure isolation, and the field quirks (429 once, chunked-only, no cross-repo mount)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from docker_transfer import Client
from docker_transfer.engine.blobs import BlobTracker
from docker_transfer.engine.copy import Copier
from docker_transfer.engine.singleflight import SingleFlight
from docker_transfer.errors import DockerTransferError
from docker_transfer.manifest import OCI_INDEX, parse_manifest
from docker_transfer.reference import parse_reference
from docker_transfer.registry.client import RegistryClient
from docker_transfer.registry.transport import TransportOptions
from docker_transfer.testing import FakeRegistry

SHARED = b"a base layer both images share"


def pair(**destination_quirks: object) -> tuple[FakeRegistry, FakeRegistry]:
    return FakeRegistry("src.test"), FakeRegistry("dst.test", **destination_quirks)  # type: ignore[arg-type]


def client(*fakes: FakeRegistry) -> RegistryClient:
    return RegistryClient(
        TransportOptions(),
        lambda host: None,
        retry=FakeRegistry.FAST_RETRY,
        http=FakeRegistry.http_client_for(*fakes),
    )


def index_of(fake: FakeRegistry, repository: str, tag: str) -> list[dict[str, object]]:
    digest = fake.tag_digest(repository, tag)
    assert digest is not None
    data, media_type = fake.manifests[repository][digest]
    assert media_type == OCI_INDEX
    return [dict(d.raw) for d in parse_manifest(data, media_type).manifests]


async def test_a_blob_shared_by_two_images_is_uploaded_once() -> None:
    src, dst = pair()
    src.push_image("lib/one", "1", ["linux/amd64"], shared_layer=SHARED)
    src.push_image("lib/two", "1", ["linux/amd64"], shared_layer=SHARED)
    async with client(src, dst) as registry:
        copier = Copier(registry, BlobTracker())
        for name in ("one", "two"):
            ref = parse_reference(f"src.test/lib/{name}:1")
            await copier.copy(ref, parse_reference(f"dst.test/mirror/{name}:1"), ["1"])
    shared = next(d for d, data in src.blobs.items() if data == SHARED)
    assert dst.uploads_of(shared) == 1  # the second image mounted it from the first's repository
    assert shared in dst.links["mirror/one"] and shared in dst.links["mirror/two"]


class Interleaving(FakeRegistry):
    """Lets other tasks run before each answer, as a network would, so concurrent copies overlap."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(3):
            await asyncio.sleep(0)
        return await super().handle_async_request(request)


async def test_concurrent_images_sharing_a_blob_upload_it_once_and_mount_it_once() -> None:
    src, dst = Interleaving("src.test"), Interleaving("dst.test")
    src.push_image("lib/one", "1", ["linux/amd64"], shared_layer=SHARED)
    src.push_image("lib/two", "1", ["linux/amd64"], shared_layer=SHARED)
    async with client(src, dst) as registry:
        copier = Copier(registry, BlobTracker())
        await asyncio.gather(
            *(
                copier.copy(
                    parse_reference(f"src.test/lib/{name}:1"),
                    parse_reference(f"dst.test/mirror/{name}:1"),
                    ["1"],
                )
                for name in ("one", "two")
            )
        )
    shared = next(d for d, data in src.blobs.items() if data == SHARED)
    assert dst.uploads_of(shared) == 1  # the second waited for the first's upload, then mounted
    mounts = [
        path for method, path in dst.requests if method == "POST" and "mount=" in path and shared[7:] in path
    ]
    assert len(mounts) == 1
    assert sum(1 for method, path in src.requests if method == "GET" and path.endswith(shared)) == 1


async def test_a_failed_blob_copy_is_tried_again_by_the_next_caller() -> None:
    src, dst = pair()
    src.push_image("lib/app", "1", ["linux/amd64"], shared_layer=SHARED)
    shared = next(d for d, data in src.blobs.items() if data == SHARED)
    dst.fail_blobs.add(shared)
    source, destination = parse_reference("src.test/lib/app:1"), parse_reference("dst.test/mirror/app:1")
    async with client(src, dst) as registry:
        copier = Copier(registry, BlobTracker())
        with pytest.raises(DockerTransferError):
            await copier.copy(source, destination, ["1"])
        dst.fail_blobs.clear()
        await copier.copy(source, destination, ["1"])  # the same tracker: the failure was not kept
    assert dst.uploads_of(shared) == 1
    assert dst.tag_digest("mirror/app", "1") is not None


async def test_single_flight_shares_one_run_survives_a_cancelled_caller_and_retries_a_failure() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    runs: list[int] = []
    gate = asyncio.Event()

    async def work() -> int:
        runs.append(1)
        await gate.wait()
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        return len(runs)

    first = asyncio.ensure_future(flight.run("k", work))
    second = asyncio.ensure_future(flight.run("k", work))
    cancelled = asyncio.ensure_future(flight.run("k", work))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    results = await asyncio.gather(first, second, cancelled, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError, asyncio.CancelledError]
    assert runs == [1]  # three callers, one run, not cancelled with its caller
    assert await flight.run("k", work) == 2  # the failure was not remembered
    assert await flight.run("k", work) == 2  # the success is
    assert flight.pending() == [] and flight.forget("k") is not None
    assert await flight.run("k", work) == 3


async def test_without_cross_repository_mounts_each_repository_gets_its_own_upload() -> None:
    src, dst = pair(no_cross_mount=True)
    src.push_image("lib/one", "1", ["linux/amd64"], shared_layer=SHARED)
    src.push_image("lib/two", "1", ["linux/amd64"], shared_layer=SHARED)
    async with client(src, dst) as registry:
        copier = Copier(registry, BlobTracker())
        for name in ("one", "two"):
            ref = parse_reference(f"src.test/lib/{name}:1")
            await copier.copy(ref, parse_reference(f"dst.test/mirror/{name}:1"), ["1"])
    shared = next(d for d, data in src.blobs.items() if data == SHARED)
    assert dst.uploads_of(shared) == 2
    assert dst.tag_digest("mirror/two", "1") is not None


async def test_a_failed_blob_writes_no_tag() -> None:
    src, dst = pair()
    src.push_image("lib/app", "1", ["linux/amd64", "linux/arm64"])
    arm_layer = next(d for d, data in src.blobs.items() if data.endswith(b"linux/arm64"))
    dst.fail_blobs.add(arm_layer)
    async with Client(http=FakeRegistry.http_client_for(src, dst), retry=FakeRegistry.FAST_RETRY) as lib:
        with pytest.raises(DockerTransferError):
            await lib.copy("src.test/lib/app:1", "dst.test/mirror/app")
    assert dst.tags.get("mirror/app", {}) == {}
    assert not any(method == "PUT" and path.endswith("/manifests/1") for method, path in dst.requests)


async def test_a_second_copy_is_unchanged_and_writes_nothing() -> None:
    src, dst = pair()
    src.push_image("lib/app", "1", ["linux/amd64", "linux/arm64"])
    async with Client(http=FakeRegistry.http_client_for(src, dst), retry=FakeRegistry.FAST_RETRY) as lib:
        first = await lib.copy("src.test/lib/app:1", "dst.test/mirror/app", platforms=["linux/arm64"])
        writes = len(dst.writes)
        source_gets = sum(1 for method, _ in src.requests if method == "GET")
        second = await lib.copy("src.test/lib/app:1", "dst.test/mirror/app", platforms=["linux/arm64"])
    assert first.status == "copied" and second.status == "unchanged"
    assert second.digest == first.digest == dst.tag_digest("mirror/app", "1")
    assert len(dst.writes) == writes  # nothing pushed
    assert sum(1 for method, _ in src.requests if method == "GET") == source_gets  # a HEAD only


async def test_refused_attestations_publish_the_image_without_them_and_warn() -> None:
    src, dst = pair(refuse_artifacts=True)
    src.push_image("lib/app", "1", ["linux/amd64", "linux/arm64"], attestations=True)
    async with Client(http=FakeRegistry.http_client_for(src, dst), retry=FakeRegistry.FAST_RETRY) as lib:
        result = await lib.copy("src.test/lib/app:1", "dst.test/mirror/app")
    assert result.status == "copied"
    assert any("attestation" in warning for warning in result.warnings), result.warnings
    entries = index_of(dst, "mirror/app", "1")
    assert len(entries) == 2
    assert all(dict(e["platform"]).get("os") == "linux" for e in entries)  # type: ignore[call-overload]


async def test_rate_limited_once_then_served() -> None:
    src, dst = pair()
    src.rate_limit_once = 0.0
    src.push_image("lib/app", "1", ["linux/amd64"])
    async with Client(http=FakeRegistry.http_client_for(src, dst), retry=FakeRegistry.FAST_RETRY) as lib:
        result = await lib.copy("src.test/lib/app:1", "dst.test/mirror/app")
    assert result.status == "copied"
    assert src.rate_limit_once is None
    first_two = [path for _, path in src.requests if path != "/v2/"][:2]
    assert first_two[0] == first_two[1]  # the refused request was sent again


async def test_chunked_only_destination_gets_patches() -> None:
    src, dst = pair(chunked_only=True)
    src.push_image("lib/app", "1", ["linux/amd64"])
    async with Client(http=FakeRegistry.http_client_for(src, dst), retry=FakeRegistry.FAST_RETRY) as lib:
        result = await lib.copy("src.test/lib/app:1", "dst.test/mirror/app")
    assert result.status == "copied"
    assert any(method == "PATCH" for method, _ in dst.requests)
    assert dst.tag_digest("mirror/app", "1") == result.digest


async def test_inspect_and_sync_on_the_fake(tmp_path: Path) -> None:
    src, dst = pair()
    src.push_image("lib/app", "1", ["linux/amd64", "linux/arm64"])
    config = tmp_path / "images.json"
    entry = {"source": "src.test/lib/app:1", "target": "app", "tags": ["1"], "architectures": ["arm64"]}
    config.write_text(json.dumps([entry]))
    async with Client(http=FakeRegistry.http_client_for(src, dst), retry=FakeRegistry.FAST_RETRY) as lib:
        info = await lib.inspect("src.test/lib/app:1")
        report = await lib.sync(config, registry="dst.test", namespace="mirror")
        again = await lib.sync(config, registry="dst.test", namespace="mirror")
    platforms = info["platforms"]
    assert isinstance(platforms, list)
    assert [p["platform"] for p in platforms] == ["linux/amd64", "linux/arm64"]
    assert [r.status for r in report.results] == ["copied"]
    assert [r.status for r in again.results] == ["unchanged"]
    assert [e["platform"] for e in index_of(dst, "mirror/app", "1")] == [
        {"os": "linux", "architecture": "arm64"}
    ]
