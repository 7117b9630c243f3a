"""`make demo`: the seed's nightly job, end to end, on two local registries.

One registry plays Docker Hub and ghcr.io (the sources), the other plays Aliyun
ACR (the target). Multi-arch images shaped like the seed's four examples are
built in the source, an images.json like the seed's is written, and the real
``docker-transfer`` CLI mirrors it, twice: the second run shows the
incremental path (HEAD requests only, nothing uploaded).
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


def run(*args: str) -> int:
    """Run a command, echoing it first; return its exit code."""
    print("$ " + " ".join(args), flush=True)
    return subprocess.run(args, check=False).returncode


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
                "architectures": ["amd64"],
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
        banner("first sync: copies the chosen platforms")
        if run(cli, "sync", *common, "--report", str(work / "report.json")) != 0:
            return 1
        banner("what landed: nginx had 4 platforms, the target has the 2 asked for")
        if run(cli, "inspect", f"{acr.host}/demo/nginx:latest", "--insecure-registry", acr.host) != 0:
            return 1
        mark_hub, mark_acr = hub.mark(), acr.mark()
        banner("second sync: nothing changed, so only HEAD requests reach the source")
        if run(cli, "sync", *common) != 0:
            return 1
        gets = hub.count("GET", r"/manifests/|/blobs/", mark_hub)
        heads = hub.count("HEAD", r"/manifests/", mark_hub)
        uploads = acr.count("POST", r"/blobs/uploads/", mark_acr)
        print(f"\nsource registry saw {heads} manifest HEADs and {gets} GETs; target saw {uploads} uploads")
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
