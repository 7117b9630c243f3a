"""``attestations: keep | drop | auto`` against a real registry behind a proxy that acts as ACR (issue 10.3).

ACR refuses BuildKit's OCI 1.1 attestation manifests (``artifactType``, config
``application/vnd.oci.empty.v1+json``) with 403 and
``{"errors":[{"code":"DENIED","message":"unknown manifest class for application/vnd.oci.empty.v1+json"}]}``.
The proxy sends exactly that for every manifest PUT whose body is an artifact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.faultproxy import ACR_UNKNOWN_MANIFEST_CLASS, Fault, FaultProxy, is_artifact_manifest
from devtools.images import PushedImage, push_image
from devtools.registry import LocalRegistry, RegistryFactory
from docker_transfer.cli import main
from docker_transfer.engine.refusal import is_refusal
from docker_transfer.errors import RegistryError
from docker_transfer.manifest import ACCEPT_MANIFESTS, DROPPED_ARTIFACTS_ANNOTATION, SOURCE_DIGEST_ANNOTATION

ACCEPT = ", ".join(ACCEPT_MANIFESTS)
ACR_WORDS = "DENIED: unknown manifest class for application/vnd.oci.empty.v1+json"


@pytest.fixture
def hub(registry_factory: RegistryFactory) -> LocalRegistry:
    return registry_factory()


@pytest.fixture
def acr(registry_factory: RegistryFactory) -> Iterator[tuple[LocalRegistry, FaultProxy]]:
    """A destination that refuses artifact manifests exactly as ACR does."""
    registry = registry_factory()
    with FaultProxy(registry) as proxy:
        proxy.add(refuse_artifacts())
        yield registry, proxy


def refuse_artifacts() -> Fault:
    return Fault(
        method="PUT",
        path=r"/manifests/",
        body_match=is_artifact_manifest,
        status=403,
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=ACR_UNKNOWN_MANIFEST_CLASS,
        times=-1,
    )


def push_with_attestations(hub: LocalRegistry, repo: str) -> PushedImage:
    return push_image(
        hub.url,
        repo,
        "1",
        platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"],
        attestations=True,
        attestation_style="oci-artifact",
    )


def sync(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    hub: LocalRegistry,
    proxy: FaultProxy,
    entries: list[dict[str, Any]],
    *extra: str,
) -> tuple[int, dict[str, Any], str, str]:
    config = tmp_path / "images.json"
    config.write_text(json.dumps(entries))
    report = tmp_path / "report.json"
    args = ["sync", "--config", str(config), "--target-registry", proxy.host, "--target-namespace", "mirror"]
    args += ["--insecure-registry", proxy.host, "--insecure-registry", hub.host, "--report", str(report)]
    code = main([*args, *extra])
    out, err = capsys.readouterr()
    return code, json.loads(report.read_text()), out, err


def entry(hub: LocalRegistry, repo: str, **more: Any) -> dict[str, Any]:
    return {
        "source": f"{hub.host}/{repo}:1",
        "target": repo,
        "tags": ["1"],
        "architectures": ["amd64", "arm64"],
        **more,
    }


def manifest_at(registry: LocalRegistry, repo: str, ref: str) -> dict[str, Any] | None:
    resp = httpx.get(f"{registry.url}/v2/mirror/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    if resp.status_code == 404:
        return None
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    return doc


def refused(proxy: FaultProxy, since: int = 0) -> int:
    return sum(1 for r in proxy.records[since:] if r.fault == "status 403")


def test_auto_publishes_without_refused_attestations_warns_and_remembers_the_host(
    hub: LocalRegistry,
    acr: tuple[LocalRegistry, FaultProxy],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, proxy = acr
    first, second = push_with_attestations(hub, "one"), push_with_attestations(hub, "two")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    entries = [entry(hub, "one"), entry(hub, "two")]
    code, report, out, err = sync(capsys, tmp_path, hub, proxy, entries, "--concurrency", "1")
    assert code == 0, out + err
    assert [r["status"] for r in report["results"]] == ["copied", "copied"]
    # whichever image went first met the refusal; the other dropped its attestations up front
    warnings = sorted((r["warnings"] for r in report["results"]), key=lambda w: "earlier" in w[0])
    assert [len(w) for w in warnings] == [1, 1] and all(ACR_WORDS in w[0] for w in warnings)
    assert "earlier in this run" not in warnings[0][0] and "earlier in this run" in warnings[1][0]
    # one refused PUT for the whole run: the second image dropped its attestations up front
    assert refused(proxy) == 1
    for image, repo in ((first, "one"), (second, "two")):
        doc = manifest_at(registry, repo, "1")
        assert doc is not None
        assert [m["digest"] for m in doc["manifests"]] == [
            image.children["linux/amd64"].digest,
            image.children["linux/arm64/v8"].digest,
        ]
        assert doc["annotations"][SOURCE_DIGEST_ANNOTATION] == image.index_digest
        assert doc["annotations"][DROPPED_ARTIFACTS_ANNOTATION] == "2"
    assert "Warnings:" in out and ACR_WORDS in out
    markdown = summary.read_text()
    assert "### Warnings" in markdown and ACR_WORDS in markdown
    assert "::warning title=" in err and ACR_WORDS in err

    # Rerun: the source digest annotation still decides; HEADs only at the source, nothing written.
    hub_mark, since = hub.mark(), len(proxy.records)
    code, report, out, err = sync(capsys, tmp_path, hub, proxy, entries)
    assert code == 0, out + err
    assert [r["status"] for r in report["results"]] == ["unchanged", "unchanged"]
    assert hub.count("GET", r"/manifests/", hub_mark) == 0
    assert not [r for r in proxy.records[since:] if r.method in ("PUT", "POST", "PATCH")]


def test_keep_fails_with_the_registrys_words_and_moves_no_tag(
    hub: LocalRegistry,
    acr: tuple[LocalRegistry, FaultProxy],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    registry, proxy = acr
    push_with_attestations(hub, "one")
    code, report, _, _ = sync(capsys, tmp_path, hub, proxy, [entry(hub, "one", attestations="keep")])
    assert code == 1
    (result,) = report["results"]
    error = result["error"]
    assert ACR_WORDS in error and "403" in error and "--attestations drop" in error
    assert "\n" not in error and "MANIFEST_INVALID" not in error
    assert manifest_at(registry, "one", "1") is None


def test_drop_never_offers_them_and_the_entry_field_beats_the_flag(
    hub: LocalRegistry,
    acr: tuple[LocalRegistry, FaultProxy],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    registry, proxy = acr
    image = push_with_attestations(hub, "one")
    entries = [entry(hub, "one", attestations="drop")]
    code, report, out, err = sync(capsys, tmp_path, hub, proxy, entries, "--attestations", "keep")
    assert code == 0, out + err
    (result,) = report["results"]
    assert result["status"] == "copied" and result["warnings"] == []
    assert refused(proxy) == 0
    att_digests = {a.digest for a in image.attestations.values()}
    assert not [r for r in proxy.records if r.method == "PUT" and any(d in r.path for d in att_digests)]
    doc = manifest_at(registry, "one", "1")
    assert doc is not None and len(doc["manifests"]) == 2


def test_a_registry_that_accepts_them_gets_them_in_auto(
    hub: LocalRegistry, registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = registry_factory()
    image = push_with_attestations(hub, "one")
    with FaultProxy(dest) as proxy:  # no rule: a registry that stores OCI 1.1 artifacts
        code, report, out, err = sync(capsys, tmp_path, hub, proxy, [entry(hub, "one")])
    assert code == 0, out + err
    assert report["results"][0]["warnings"] == []
    doc = manifest_at(dest, "one", "1")
    assert doc is not None and len(doc["manifests"]) == 4
    kept = {m["digest"] for m in doc["manifests"]}
    assert image.attestations["linux/amd64"].digest in kept


def test_copy_auto_warns_on_stderr(
    hub: LocalRegistry, acr: tuple[LocalRegistry, FaultProxy], capsys: pytest.CaptureFixture[str]
) -> None:
    registry, proxy = acr
    push_with_attestations(hub, "one")
    args = ["copy", f"{hub.host}/one:1", f"{proxy.host}/mirror/one:1", "--json"]
    code = main([*args, "--insecure-registry", hub.host, "--insecure-registry", proxy.host])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ACR_WORDS in err and ACR_WORDS in json.loads(out)["warnings"][0]
    doc = manifest_at(registry, "one", "1")
    assert doc is not None and len(doc["manifests"]) == 3
    # and the rerun is unchanged: the dropped attestations are not demanded
    code = main([*args, "--insecure-registry", hub.host, "--insecure-registry", proxy.host])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["status"] == "unchanged"


def test_refused_annotations_fall_back_to_a_bare_index_with_a_warning(
    hub: LocalRegistry, registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = registry_factory()
    push_image(hub.url, "one", "1", platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"])
    strict = (
        b'{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid: unknown field annotations"}]}'
    )
    with FaultProxy(dest) as proxy:
        proxy.add(
            Fault(
                method="PUT",
                path=r"/manifests/",
                body_match=lambda body: SOURCE_DIGEST_ANNOTATION.encode() in body,
                status=400,
                body=strict,
                times=-1,
            )
        )
        code, report, out, err = sync(capsys, tmp_path, hub, proxy, [entry(hub, "one")])
    assert code == 0, out + err
    (result,) = report["results"]
    assert "MANIFEST_INVALID: manifest invalid: unknown field annotations" in result["warnings"][0]
    assert "every run copies this image again" in result["warnings"][0]
    doc = manifest_at(dest, "one", "1")
    assert doc is not None and "annotations" not in doc and len(doc["manifests"]) == 2
    assert (
        result["digest"]
        == httpx.head(f"{dest.url}/v2/mirror/one/manifests/1", headers={"Accept": ACCEPT}).headers[
            "Docker-Content-Digest"
        ]
    )


def test_refused_oci_media_type_is_one_line_naming_the_registrys_words(
    hub: LocalRegistry, registry_factory: RegistryFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = registry_factory()
    push_image(hub.url, "one", "1", platforms=["linux/amd64"])
    words = b'{"errors":[{"code":"MANIFEST_INVALID","message":"unsupported manifest media type"}]}'
    with FaultProxy(dest) as proxy:
        proxy.add(
            Fault(
                method="PUT",
                path=r"/manifests/",
                body_match=lambda body: b"application/vnd.oci.image" in body,
                status=400,
                body=words,
                times=-1,
            )
        )
        code, report, _, _ = sync(capsys, tmp_path, hub, proxy, [entry(hub, "one", architectures=["amd64"])])
    assert code == 1
    error = report["results"][0]["error"]
    assert "MANIFEST_INVALID: unsupported manifest media type" in error
    assert "application/vnd.oci.image.manifest.v1+json" in error and "OCI media types" in error
    assert "\n" not in error
    assert manifest_at(dest, "one", "1") is None


@pytest.mark.parametrize(
    ("status", "code", "detail", "expected"),
    [
        (403, "DENIED", "unknown manifest class for application/vnd.oci.empty.v1+json", True),
        (400, "MANIFEST_INVALID", "manifest invalid", True),
        (415, None, None, True),
        # access and missing blobs are other failures, with their own messages and retries
        (403, "DENIED", "requested access to the resource is denied", False),
        (400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", False),
        (400, "DIGEST_INVALID", "provided digest did not match uploaded content", False),
        (401, "UNAUTHORIZED", "authentication required", False),
        (500, None, None, False),
    ],
)
def test_which_manifest_put_answers_count_as_refusing_the_content(
    status: int, code: str | None, detail: str | None, expected: bool
) -> None:
    exc = RegistryError("PUT manifest", status=status, code=code, detail=detail)
    assert is_refusal(exc) is expected
