"""`make demo`: the seed's nightly job, end to end, on two local registries.

One registry plays Docker Hub and ghcr.io (the sources), the other plays Aliyun
ACR (the target). Multi-arch images shaped like the seed's four examples are
built in the source, an images.json like the seed's is written, and the real
``docker-transfer`` CLI mirrors it, twice: the second run shows the
incremental path (HEAD requests only, nothing uploaded).

Like the seed's list, one entry asks for a platform its source lacks (vllm-openai
has no linux/arm64): that entry fails, the others go on, and the job summary
(``report merge --summary``) shows the failure as a GitHub run would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.images import push_image, push_single
from devtools.registry import LocalRegistry

MB = 1024 * 1024


def banner(text: str) -> None:
    """Print a section heading."""
    print(f"\n=== {text} ===", flush=True)


def run(*args: str, show_stdout: bool = True) -> int:
    """Run a command, echoing it first; return its exit code."""
    print("$ " + " ".join(args), flush=True)
    stdout = None if show_stdout else subprocess.DEVNULL
    return subprocess.run(args, check=False, stdout=stdout).returncode


def only_vllm_failed(report: Path) -> bool:
    """True when the report's failures are exactly vllm-openai's tags, for its missing arm64."""
    results = json.loads(report.read_text(encoding="utf-8"))["results"]
    failed = [r for r in results if r["status"] == "failed"]
    return (
        len(failed) == 2
        and all(r["target"].endswith("/vllm-openai") for r in failed)
        and all("linux/arm64" in (r["error"] or "") for r in failed)
        and all(r["status"] == "copied" for r in results if r not in failed)
    )


def main() -> int:
    """Run the demo; exit non-zero if any step misbehaves."""
    cli = shutil.which("docker-transfer") or str(Path(sys.executable).with_name("docker-transfer"))
    with (
        tempfile.TemporaryDirectory(prefix="docker-transfer-demo-") as tmp,
        LocalRegistry() as hub,
        LocalRegistry() as acr,
    ):
        work = Path(tmp)
        banner(f"source registry (stands in for Docker Hub / ghcr.io): {hub.host}")
        banner(f"target registry (stands in for Aliyun ACR):           {acr.host}")
        print("building test images in the source registry ...", flush=True)
        push_image(
            hub.url,
            "library/nginx",
            "latest",
            fmt="docker",
            layer_size=2 * MB,
            platforms=["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/386"],
        )
        push_image(
            hub.url, "library/ubuntu", "22.04", layer_size=MB, platforms=["linux/amd64", "linux/arm64/v8"]
        )
        push_single(hub.url, "vllm/vllm-openai", "v0.11.0", platform="linux/amd64", layer_size=3 * MB)
        push_image(
            hub.url,
            "open-webui/open-webui",
            "main",
            layer_size=MB,
            attestations=True,
            platforms=["linux/amd64", "linux/arm64/v8", "linux/s390x"],
        )
        images = [
            {
                "source": f"{hub.host}/library/nginx:latest",
                "target": "nginx",
                "tags": ["latest"],
                "architectures": ["amd64", "arm64"],
            },
            {
                "source": f"{hub.host}/library/ubuntu:22.04",
                "target": "ubuntu",
                "tags": ["22.04", "jammy", "latest"],
                "architectures": ["amd64", "arm64"],
            },
            {
                "source": f"{hub.host}/vllm/vllm-openai:v0.11.0",
                "target": "vllm-openai",
                "tags": ["v0.11.0", "latest"],
                "architectures": ["amd64", "arm64"],  # the source has amd64 only: this entry fails
            },
            {
                "source": f"{hub.host}/open-webui/open-webui:main",
                "target": "open-webui",
                "tags": ["main", "latest"],
                "architectures": ["amd64", "arm64"],
                "arch_tags": True,
            },
        ]
        config = work / "images.json"
        config.write_text(json.dumps(images, indent=4))
        print(f"\n{config}:\n{config.read_text()}")

        common = [
            "--config",
            str(config),
            "--target-registry",
            acr.host,
            "--target-namespace",
            "demo",
            "--insecure-registry",
            hub.host,
            "--insecure-registry",
            acr.host,
        ]
        banner("validate")
        if run(cli, "validate", "--config", str(config)) != 0:
            return 1
        banner("first sync: copies the chosen platforms; vllm-openai lacks linux/arm64 and fails alone")
        report = work / "report.json"
        if run(cli, "sync", *common, "--report", str(report)) != 1 or not only_vllm_failed(report):
            print("unexpected: exactly the vllm-openai entry should fail (exit 1)", file=sys.stderr)
            return 1
        banner("the job summary a GitHub run shows (report merge --summary, Markdown)")
        summary = work / "summary.md"
        merge = [cli, "report", "merge", str(report), "--config", str(config), "--summary", str(summary)]
        run(*merge, show_stdout=False)  # its table is the one above
        print(summary.read_text(encoding="utf-8"), flush=True)
        banner("what landed: nginx had 4 platforms, the target has the 2 asked for")
        if run(cli, "inspect", f"{acr.host}/demo/nginx:latest", "--insecure-registry", acr.host) != 0:
            return 1
        mark_hub, mark_acr = hub.mark(), acr.mark()
        banner("second sync: nothing changed, so only HEAD requests reach the source")
        if run(cli, "sync", *common) != 1:  # vllm-openai still lacks arm64
            return 1
        # The failed entry is tried again in full (its tags were never written); the others not.
        gets = hub.count("GET", r"^(?!.*/vllm/).*(/manifests/|/blobs/)", mark_hub)
        heads = hub.count("HEAD", r"/manifests/", mark_hub)
        uploads = acr.count("POST", r"/blobs/uploads/", mark_acr)
        print(
            f"\nsource registry saw {heads} manifest HEADs and {gets} GETs (besides the failing"
            f" vllm-openai); target saw {uploads} uploads"
        )
        if gets or uploads:
            print("unexpected: an unchanged rerun must not GET from the source or upload", file=sys.stderr)
            return 1
        if shutil.which("skopeo"):
            banner("independent check: skopeo pulls everything back from the target")
            code = run(
                "skopeo",
                "copy",
                "--all",
                "--quiet",
                "--src-tls-verify=false",
                f"docker://{acr.host}/demo/open-webui:latest",
                f"oci:{work / 'oci'}",
            )
            if code != 0:
                return 1
            print("skopeo copy --all: OK")
        banner("demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
