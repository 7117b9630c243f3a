"""Mistakes in destination settings and the report path: refused up front, named precisely (10.5, 10.6).

Everything here must end before any registry is contacted: the local registries
only prove that no request reached them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devtools.images import push_image
from devtools.registry import LocalRegistry
from docker_transfer.cli import main
from docker_transfer.config import load_config
from docker_transfer.naming import is_acr_personal, nested_target_problems
from docker_transfer.report import Report

ACR_PERSONAL = "registry.cn-hangzhou.aliyuncs.com"
ENV_VARIABLES = (
    "TARGET_REGISTRY",
    "TARGET_NAMESPACE",
    "ALIYUN_REGISTRY",
    "ALIYUN_NAMESPACE",
    "DT_ALLOW_NESTED_TARGETS",
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def write(path: Path, entries: Any) -> Path:
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries, indent=2))
    return path


def entry(target: str, source: str = "nginx:1") -> dict[str, Any]:
    return {"source": source, "target": target, "tags": ["1"], "architectures": ["amd64"]}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --- ACR personal edition: one level below the namespace -----------------------------------------


@pytest.mark.parametrize(
    ("host", "personal"),
    [
        ("registry.cn-hangzhou.aliyuncs.com", True),
        ("REGISTRY.cn-shanghai.aliyuncs.com:443", True),
        ("registry-vpc.cn-beijing.aliyuncs.com", True),
        ("registry-intl.ap-southeast-1.aliyuncs.com", True),
        ("crpi-abc123xyz.cn-hangzhou.personal.cr.aliyuncs.com", True),
        ("crpi-abc123xyz-vpc.cn-hangzhou.personal.cr.aliyuncs.com", True),
        ("myinstance-registry.cn-hangzhou.cr.aliyuncs.com", False),  # enterprise edition
        ("registry.cn-hangzhou.aliyuncs.com.evil.example", False),
        ("ghcr.io", False),
        ("127.0.0.1:5000", False),
    ],
)
def test_acr_personal_hosts_are_recognised(host: str, personal: bool) -> None:
    assert is_acr_personal(host) is personal


def test_nested_target_problem_names_the_entry_line_and_the_way_out(tmp_path: Path) -> None:
    text = "[\n" + json.dumps(entry("nginx")) + ",\n\n" + json.dumps(entry("library/nginx")) + "\n]\n"
    config = load_config(write(tmp_path / "images.json", text))
    (problem,) = nested_target_problems(config.entries, ACR_PERSONAL, "mirror")
    assert problem.startswith("images[1].target: \"library/nginx\" has a '/'")
    assert "ACR personal edition" in problem and f"{ACR_PERSONAL}/mirror/library/nginx" in problem
    assert "--allow-nested-targets" in problem and problem.endswith("(line 4)")
    assert nested_target_problems(config.entries, "ghcr.io", "mirror") == []


def test_validate_refuses_nested_target_for_acr_personal_and_allows_it_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = str(write(tmp_path / "images.json", [entry("library/nginx")]))
    # The default destination (as for sync) is Hangzhou ACR personal edition.
    code, _, err = run(capsys, "validate", "--config", config)
    assert code == 2 and "accepts only namespace/repository" in err, err
    monkeypatch.setenv("TARGET_REGISTRY", "crpi-x1.cn-hangzhou.personal.cr.aliyuncs.com")
    code, _, err = run(capsys, "validate", "--config", config)
    assert code == 2 and "crpi-x1.cn-hangzhou.personal.cr.aliyuncs.com is an ACR personal" in err
    assert run(capsys, "validate", "--config", config, "--allow-nested-targets")[0] == 0
    assert run(capsys, "validate", "--config", config, "--target-registry", "ghcr.io")[0] == 0
    monkeypatch.setenv("DT_ALLOW_NESTED_TARGETS", "1")
    assert run(capsys, "validate", "--config", config)[0] == 0


def test_sync_refuses_nested_target_for_acr_personal_before_any_request(
    registry: LocalRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path / "images.json", [entry("library/nginx", f"{registry.host}/nginx:1")]))
    mark = registry.mark()
    args = ["sync", "--config", config, "--target-namespace", "mirror", "--insecure-registry", registry.host]
    code, _, err = run(capsys, *[*args, "--target-registry", "registry-vpc.cn-beijing.aliyuncs.com"])
    assert code == 2 and "images[0].target" in err and "ACR personal edition" in err, err
    code, _, err = run(capsys, *[*args, "--target-registry", ACR_PERSONAL, "--target-namespace", "a/b"])
    assert code == 2 and "--target-namespace 'a/b'" in err and "cannot contain '/'" in err
    assert registry.requests(mark) == []


def test_sync_with_allow_nested_targets_pushes_the_nested_path(
    two_registries: tuple[LocalRegistry, LocalRegistry], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The flag reaches the run: a nested target is pushed where asked (a plain registry stands in)."""
    source, dest = two_registries
    push_image(source.url, "nginx", "1", platforms=["linux/amd64"])
    config = str(write(tmp_path / "images.json", [entry("library/nginx", f"{source.host}/nginx:1")]))
    code, _, err = run(
        capsys,
        "sync",
        "--config",
        config,
        "--target-registry",
        dest.host,
        "--target-namespace",
        "mirror",
        "--allow-nested-targets",
        "--insecure-registry",
        dest.host,
        "--insecure-registry",
        source.host,
    )
    assert code == 0, err
    assert dest.count("PUT", r"^/v2/mirror/library/nginx/manifests/1$") == 1


# --- values from the environment are named by their variable -------------------------------------


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"ALIYUN_REGISTRY": "https://registry.cn-hangzhou.aliyuncs.com"}, "ALIYUN_REGISTRY='https://"),
        ({"TARGET_REGISTRY": "ghcr.io/me"}, "TARGET_REGISTRY='ghcr.io/me'"),
        ({"ALIYUN_NAMESPACE": "My_NS"}, "ALIYUN_NAMESPACE='My_NS': invalid namespace"),
        ({"TARGET_NAMESPACE": "-bad-"}, "TARGET_NAMESPACE='-bad-': invalid namespace"),
    ],
)
def test_bad_environment_values_name_their_variable(
    variables: dict[str, str],
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALIYUN_NAMESPACE", "mirror")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = str(write(tmp_path / "images.json", [entry("nginx")]))
    code, _, err = run(capsys, "sync", "--config", config)
    assert code == 2
    assert expected in err, err
    assert "--target-" not in err
    assert "Traceback" not in err and "internal error" not in err


def test_bad_flag_values_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write(tmp_path / "images.json", [entry("nginx")]))
    code, _, err = run(capsys, "sync", "--config", config, "--target-registry", "https://ghcr.io")
    assert code == 2 and "--target-registry 'https://ghcr.io'" in err
    code, _, err = run(
        capsys, "sync", "--config", config, "--target-registry", "ghcr.io", "--target-namespace", "Me"
    )
    assert code == 2 and "--target-namespace 'Me': invalid namespace" in err


# --- --report: refused before any network ----------------------------------------------------------


@pytest.fixture
def source_config(registry: LocalRegistry, tmp_path: Path) -> tuple[LocalRegistry, list[str]]:
    push_image(registry.url, "app", "1", platforms=["linux/amd64"])
    config = write(tmp_path / "images.json", [entry("app", f"{registry.host}/app:1")])
    args = ["sync", "--config", str(config), "--target-registry", registry.host]
    return registry, [*args, "--target-namespace", "mirror", "--insecure-registry", registry.host]


@pytest.mark.parametrize(
    ("make_path", "expected"),
    [
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "r.json", "is not a directory"),
        (lambda tmp: (tmp / "f").write_text("x") and tmp / "f" / "sub" / "r.json", "f is not a directory"),
        (lambda tmp: Path("/proc/r.json"), "cannot write in /proc"),
        (lambda tmp: tmp / "missing" / "r.json", "the directory"),
    ],
    ids=["directory", "parent-is-a-file", "ancestor-is-a-file", "proc", "missing-dir"],
)
def test_unwritable_report_path_is_refused_before_any_request(
    source_config: tuple[LocalRegistry, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_path: Any,
    expected: str,
) -> None:
    registry, args = source_config
    path = make_path(tmp_path)
    mark = registry.mark()
    code, out, err = run(capsys, *args, "--report", str(path))
    assert code == 2, err
    assert f"--report {path}" in err and expected in err, err
    assert "internal error" not in err and out == ""
    assert registry.requests(mark) == []


# --- a broken images.json under GitHub Actions ------------------------------------------------------


def test_broken_config_on_github_writes_report_annotations_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    config = write(
        tmp_path / "images.json",
        '[\n  {"source": "nginx:1", "target": "web", "tags": ["1"],\n'
        '   "architectures": ["amd64", "sparc"]},\n'
        '  {"source": "nginx:1", "target": "web2", "tags": ["1"], "architectures": ["amd64"],\n'
        '   "arhc_tags": true}\n]\n',
    )
    report_path = tmp_path / "report.json"
    args = ["sync", "--config", str(config), "--report", str(report_path), "--shard", "0/2"]
    code, _, err = run(capsys, *args, "--target-registry", "ghcr.io", "--target-namespace", "me")
    assert code == 2
    assert "error: " in err and "Traceback" not in err

    annotations = [line for line in err.splitlines() if line.startswith("::error ")]
    path = str(config).replace(":", "%3A").replace(",", "%2C")
    assert annotations[0].startswith(f"::error file={path},line=3,title=invalid images.json::images[0]")
    assert annotations[1].startswith(f"::error file={path},line=5,title=invalid images.json::images[1]")
    assert len(annotations) == 2

    report = json.loads(report_path.read_text())
    assert report["results"] == []
    assert [(p["line"], p["file"]) for p in report["config_errors"]] == [(3, str(config)), (5, str(config))]
    assert '"sparc" is not a known architecture' in report["config_errors"][0]["message"]
    assert Report.from_dict(report).exit_code() == 2

    text = summary.read_text()
    assert text.startswith("## ❌ docker-transfer sync · shard 0/2: not started, 2 configuration problems")
    assert "### Invalid configuration" in text and f"`{config}:5`" in text and "arhc_tags" in text


def test_report_merge_shows_config_errors_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path / "images.json", '[{"source": "nginx"}]'))
    for shard in (0, 1):
        report = str(tmp_path / f"report-{shard}.json")
        args = ["sync", "--config", config, "--report", report, "--shard", f"{shard}/2"]
        assert run(capsys, *args, "--target-registry", "ghcr.io", "--target-namespace", "me")[0] == 2
    merged = tmp_path / "merged.md"
    reports = [str(tmp_path / "report-0.json"), str(tmp_path / "report-1.json")]
    code, out, err = run(capsys, "report", "merge", *reports, "--summary", str(merged))
    assert code == 1
    assert "missing report" not in out + err and "crashed" not in merged.read_text()
    # The same problems from both shards are listed once.
    assert out.count('missing required field "tags"') == 1, out
    assert merged.read_text().count('missing required field "tags"') == 1
    assert "not started, 2 configuration problems" in merged.read_text()


def test_broken_config_without_github_writes_only_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write(tmp_path / "images.json", "[{]"))
    report_path = tmp_path / "report.json"
    code, out, err = run(capsys, "sync", "--config", config, "--report", str(report_path))
    assert code == 2 and "::error" not in out + err
    (problem,) = json.loads(report_path.read_text())["config_errors"]
    assert problem["line"] == 1 and "invalid JSON" in problem["message"]


def test_bad_report_path_on_github_is_annotated_and_summarised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    config = str(write(tmp_path / "images.json", [entry("nginx")]))
    args = ["sync", "--config", config, "--report", str(tmp_path), "--target-registry", "ghcr.io"]
    code, _, err = run(capsys, *args, "--target-namespace", "me")
    assert code == 2
    assert "::error title=docker-transfer sync not started::--report " in err
    assert "is a directory" in summary.read_text()
    assert {p.name for p in tmp_path.iterdir()} == {"images.json", "summary.md"}  # nothing else written


# --- several destinations: --target REGISTRY/NAMESPACE, repeatable (issue 13, part 3) -----------------


@pytest.mark.parametrize(
    ("targets", "extra", "expected"),
    [
        (
            ["a.example.com/ns", "b.example.com/ns"],
            ["--target-registry", "c.example.com"],
            "drop --target-registry",
        ),
        (["a.example.com/ns"], ["--target-namespace", "ns"], "drop --target-registry and --target-namespace"),
        (["a.example.com/ns", "oci:/tmp/layout"], [], "cannot be mixed with registry destinations"),
        (["oci:/tmp/one", "oci:/tmp/two"], [], "may be given once"),
        (["a.example.com/ns", "a.example.com/ns"], [], "given twice"),
        (["a.example.com/ns", "A.example.com/ns"], [], "given twice"),
        (["mirror/ns"], [], "with a registry host first"),
        (["a.example.com"], [], "with a registry host first"),
        (["https://a.example.com/ns"], [], "expected oci:DIR"),
        (["a.example.com/NS"], [], "uppercase"),
        (["a.example.com:70000/ns"], [], "out of range"),
        ([f"{ACR_PERSONAL}/a/b"], [], "ACR personal edition"),
    ],
)
def test_target_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, targets: list[str], extra: list[str], expected: str
) -> None:
    config = write(tmp_path / "images.json", [entry("nginx")])
    args = [arg for target in targets for arg in ("--target", target)]
    code, out, err = run(capsys, "sync", "--config", str(config), *args, *extra)
    assert code == 2, out + err
    assert expected in err
    assert "Traceback" not in err


def test_nested_targets_are_checked_per_destination(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A nested target is fine on one registry and refused on ACR personal edition, in the same run."""
    config = write(tmp_path / "images.json", [entry("team/nginx")])
    report = tmp_path / "report.json"
    code, _, err = run(
        capsys,
        "sync",
        "--config",
        str(config),
        "--target",
        "registry.example.com/mirror",
        "--target",
        f"{ACR_PERSONAL}/mirror",
        "--report",
        str(report),
    )
    assert code == 2
    assert ACR_PERSONAL in err and "team/nginx" in err
    assert Report.from_json(report.read_text()).config_errors
