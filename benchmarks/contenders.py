"""The contenders, each run as the separate processes a user would run.

* ours: ``python -m docker_transfer copy`` / ``sync``;
* the seed: ``skopeo copy --override-arch A`` once per tag and architecture to ``tag-A``, then a
  manifest list built through the Registry API (``skopeo inspect --raw`` + ``curl -X PUT``), as the
  seed's workflow does with its shell loop;
* ``skopeo sync --all`` from a YAML source list;
* the raw limit: per blob ``curl GET | curl -T - PUT`` pipelines, 8 at a time, then the manifests.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.env import Timed, clear_blob_info_cache, ours_argv, run_timed
from benchmarks.images import Blob, BuiltImage

ARCH_PLATFORMS = {
    "amd64": {"os": "linux", "architecture": "amd64"},
    "arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
    "arm/v7": {"os": "linux", "architecture": "arm", "variant": "v7"},
}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Outcome:
    """One contender's measured run."""

    seconds: float
    detail: dict[str, Any]


# -- ours ----------------------------------------------------------------------------------------


def ours_copy(
    src: str, dst: str, repo: str, tag: str, arches: Sequence[str], concurrency: int = 8
) -> Outcome:
    """``docker-transfer copy SRC DST --arch ... --insecure-registry SRC --insecure-registry DST``."""
    argv = [*ours_argv(), "copy", f"{src}/{repo}:{tag}", f"{dst}/{repo}:{tag}"]
    for arch in arches:
        argv += ["--arch", arch]
    argv += ["--insecure-registry", src, "--insecure-registry", dst, "--json"]
    if concurrency != 8:
        argv += ["--concurrency", str(concurrency)]
    done = run_timed(argv)
    return Outcome(done.seconds, json.loads(done.stdout))


def write_images_json(
    path: Path,
    src: str,
    repos: Sequence[str],
    tag: str,
    tags: Sequence[str],
    arches: Sequence[str],
    *,
    arch_tags: bool,
) -> None:
    """A seed-shaped images.json: one entry per repo (target = last path component of the repo)."""
    entries = [
        {
            "source": f"{src}/{repo}:{tag}",
            "target": repo.rsplit("/", 1)[-1],
            "tags": list(tags),
            "architectures": list(arches),
            "arch_tags": arch_tags,
        }
        for repo in repos
    ]
    path.write_text(json.dumps(entries, indent=2))


def ours_sync(
    config: Path, src: str, dst: str, namespace: str, concurrency: int | None = None, *, rss: bool = False
) -> Outcome:
    """``docker-transfer sync --config images.json`` into ``dst/namespace``.

    ``rss``: under ``/usr/bin/time -v``, with the peak RSS in ``peak_rss_MiB``.
    """
    report = config.with_name(f"report-{time.monotonic_ns()}.json")
    argv = [
        *(["/usr/bin/time", "-v"] if rss else []),
        *ours_argv(),
        "sync",
        "--config",
        str(config),
        "--target-registry",
        dst,
        "--target-namespace",
        namespace,
        "--insecure-registry",
        src,
        "--insecure-registry",
        dst,
        "--report",
        str(report),
    ]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    done = run_timed(argv)
    summary = json.loads(report.read_text()).get("summary", {})
    report.unlink()
    detail: dict[str, Any] = {"summary": summary}
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if rss and peak is not None:
        detail["peak_rss_MiB"] = round(int(peak[1]) / 1024, 1)
    return Outcome(done.seconds, detail)


# -- skopeo --------------------------------------------------------------------------------------


def _skopeo_copy(src_ref: str, dst_ref: str, arch: str) -> Timed:
    name, _, variant = arch.partition("/")
    argv = ["skopeo", "copy", "--override-arch", name]
    if variant:
        argv += ["--override-variant", variant]
    argv += [
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{src_ref}",
        f"docker://{dst_ref}",
    ]
    return run_timed(argv)


def seed_manifest_list(dst: str, repo: str, tag: str, arches: Sequence[str]) -> None:
    """What the seed does after its per-arch copies: read each ``tag-A`` manifest, PUT a list at ``tag``."""
    entries = []
    child_types = set()
    for arch in arches:
        raw = run_timed(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{dst}/{repo}:{tag}-{_tag(arch)}"]
        ).stdout.encode()
        media_type = json.loads(raw).get("mediaType", OCI_MANIFEST)
        child_types.add(media_type)
        entries.append(
            {
                "mediaType": media_type,
                "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                "size": len(raw),
                "platform": ARCH_PLATFORMS[arch],
            }
        )
    list_type = OCI_INDEX if child_types == {OCI_MANIFEST} else DOCKER_LIST
    body = json.dumps({"schemaVersion": 2, "mediaType": list_type, "manifests": entries})
    _curl_put_manifest(dst, repo, tag, body.encode(), list_type)


def _tag(arch: str) -> str:
    return arch.replace("/", "")


def seed_loop(
    src: str,
    dst: str,
    jobs: Sequence[tuple[str, str, str]],
    tags: Sequence[str],
    arches: Sequence[str],
    *,
    clear_cache: bool = True,
) -> Outcome:
    """The seed's nightly loop for ``jobs`` = [(source repo, source tag, target repo)], one after another.

    For each target tag and architecture ``skopeo copy --override-arch A`` to ``target:tag-A``,
    then the manifest list at ``target:tag``. The blob-info cache is cleared first (the seed runs
    on a fresh GitHub runner every night).
    """
    cleared = clear_blob_info_cache() if clear_cache else []
    started = time.perf_counter()
    copies = 0.0
    for src_repo, src_tag, target in jobs:
        for tag in tags:
            for arch in arches:
                copies += _skopeo_copy(
                    f"{src}/{src_repo}:{src_tag}", f"{dst}/{target}:{tag}-{_tag(arch)}", arch
                ).seconds
            seed_manifest_list(dst, target, tag, arches)
    took = time.perf_counter() - started
    return Outcome(took, {"copies_s": round(copies, 3), "cache_cleared": cleared})


def write_sync_yaml(path: Path, src: str, repos: Sequence[str], tags: Sequence[str]) -> None:
    """``skopeo sync --src yaml`` source list: every repo with its tags."""
    lines = [f"{src}:", "  tls-verify: false", "  images:"]
    for repo in repos:
        lines.append(f"    {repo}:")
        lines += [f"      - {tag}" for tag in tags]
    path.write_text("\n".join(lines) + "\n")


def skopeo_sync(config: Path, dst: str, namespace: str) -> Outcome:
    """``skopeo sync --all --src yaml --dest docker`` (cache cleared first)."""
    cleared = clear_blob_info_cache()
    done = run_timed(
        [
            "skopeo",
            "sync",
            "--all",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            str(config),
            f"{dst}/{namespace}",
        ]
    )
    return Outcome(done.seconds, {"cache_cleared": cleared})


# -- the raw limit -------------------------------------------------------------------------------

_PIPE = r"""
set -euo pipefail
loc=$(curl -sS -f -X POST -o /dev/null -w '%header{location}' "$DST/v2/$REPO/blobs/uploads/")
case "$loc" in http*) ;; *) loc="$DST$loc" ;; esac
case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sS -f "$SRC/v2/$REPO/blobs/$DIGEST" \
  | curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
      -T - "$loc${sep}digest=$DIGEST"
"""


def curl_limit(
    src: str, dst: str, repo: str, tag: str, image: BuiltImage, platforms: Sequence[str], parallel: int = 8
) -> Outcome:
    """The same blobs, streamed by curl pipelines ``parallel`` at a time; then children and index by curl."""
    blobs = image.blobs_for(list(platforms))

    def one(blob: Blob) -> None:
        env = {
            "SRC": f"http://{src}",
            "DST": f"http://{dst}",
            "REPO": repo,
            "DIGEST": blob.digest,
            "PATH": "/usr/bin:/bin",
        }
        subprocess.run(["bash", "-c", _PIPE], env=env, check=True, capture_output=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, sorted(blobs, key=lambda b: -b.size)))
    blobs_done = time.perf_counter() - started
    for platform in platforms:
        digest, data, media_type = image.children[platform]
        _curl_put_manifest(dst, repo, digest, data, media_type)
    _curl_put_manifest(dst, repo, tag, image.filtered_index(list(platforms)), OCI_INDEX)
    took = time.perf_counter() - started
    return Outcome(
        took, {"blobs_s": round(blobs_done, 3), "blobs": len(blobs), "bytes": sum(b.size for b in blobs)}
    )


def _curl_put_manifest(dst: str, repo: str, ref: str, data: bytes, media_type: str) -> None:
    subprocess.run(
        [
            "curl",
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "-X",
            "PUT",
            "-H",
            f"Content-Type: {media_type}",
            "--data-binary",
            "@-",
            f"http://{dst}/v2/{repo}/manifests/{ref}",
        ],
        input=data,
        check=True,
    )
