"""The GitHub job summary (golden file) and workflow-command strings built from a report.

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_summary.py``
and review the diff.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from docker_transfer.ratelimit import RateLimit, ratelimits_from, tightest_per_host
from docker_transfer.report import Report, TagResult
from docker_transfer.summary import (
    error_annotations,
    error_command,
    escape_data,
    escape_property,
    group_command,
    group_images,
    inert,
    mask_commands,
    render_ratelimit,
    render_summary,
    warning_annotations,
)

GOLDEN = Path(__file__).parent / "golden"
START = datetime(2025, 1, 2, 2, 0, 0, tzinfo=UTC)
ACR = "registry.cn-hangzhou.aliyuncs.com/mirror"


def fixture_report() -> Report:
    """Four images: copied (two tags), unchanged, failed (hostile error text), partial."""
    nginx: dict[str, Any]
    ubuntu: dict[str, Any]
    vllm: dict[str, Any]
    r = Report(started=START, finished=START + timedelta(minutes=3, seconds=25))
    nginx = {"source": "docker.io/library/nginx:latest", "target": f"{ACR}/nginx"}
    r.add(
        TagResult(
            **nginx,
            tag="latest",
            status="copied",
            digest="sha256:" + "a" * 64,
            platforms=["linux/amd64", "linux/arm64/v8"],
            bytes_copied=73_400_320,
            duration_s=41.2,
        )
    )
    r.add(
        TagResult(
            **nginx,
            tag="1.27",
            status="unchanged",
            digest="sha256:" + "a" * 64,
            platforms=["linux/amd64", "linux/arm64/v8"],
            duration_s=41.2,
        )
    )
    ubuntu = {"source": "docker.io/library/ubuntu:22.04", "target": f"{ACR}/ubuntu"}
    for tag in ("22.04", "jammy"):
        r.add(
            TagResult(
                **ubuntu,
                tag=tag,
                status="unchanged",
                digest="sha256:" + "b" * 64,
                platforms=["linux/amd64", "linux/arm64/v8"],
                duration_s=0.4,
            )
        )
    vllm = {"source": "docker.io/vllm/vllm-openai:v0.11.0", "target": f"{ACR}/vllm-openai"}
    error = "platform(s) linux/arm64 not in the source image (it has: linux/amd64)\nhint: a|b <b>bold</b> `x`"
    for tag in ("v0.11.0", "latest"):
        r.add(
            TagResult(
                **vllm,
                tag=tag,
                status="failed",
                platforms=["linux/amd64", "linux/arm64"],
                duration_s=1.5,
                error=error,
            )
        )
    r.add(
        TagResult(
            source="ghcr.io/open-webui/open-webui:main",
            target=f"{ACR}/open-webui",
            tag="main",
            status="copied",
            digest="sha256:" + "c" * 64,
            platforms=["linux/amd64"],
            bytes_copied=1_250_000_000,
            duration_s=184.0,
            error="partial: published without linux/arm64/v8",
        )
    )
    return r


RATELIMIT = [{"host": "registry-1.docker.io", "limit": 100, "remaining": 76, "window_s": 21600}]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_GOLDEN=1 rewrites it"


def test_summary_matches_golden() -> None:
    report = fixture_report()
    data = {**report.to_dict(), "ratelimit": RATELIMIT}
    text = render_summary(report, ratelimits=ratelimits_from(data))
    check_golden("summary.md", text)


def test_failures_come_first_with_their_error() -> None:
    text = render_summary(fixture_report())
    failures, images = text.index("### Failures"), text.index("### Images")
    assert failures < images
    failure_rows = text[failures:images]
    assert "vllm-openai" in failure_rows and "not in the source image" in failure_rows
    assert "nginx" not in failure_rows
    assert text.splitlines()[0] == "## ❌ docker-transfer sync: 1 of 4 images failed"


def test_one_table_per_image_with_its_tags() -> None:
    text = render_summary(fixture_report())
    headings = re.findall(r"^#### .*$", text, flags=re.M)
    assert len(headings) == 4
    assert (
        "`registry.cn-hangzhou.aliyuncs.com/mirror/nginx` ← `docker.io/library/nginx:latest`" in headings[0]
    )
    nginx = text[text.index(headings[0]) : text.index(headings[1])]
    assert "| `latest` | amd64, arm64/v8 | ✅ copied | 73.4 MB | 41.2s |" in nginx
    assert "| `1.27` |" in nginx


def test_cells_are_escaped_and_rows_keep_their_columns() -> None:
    text = render_summary(fixture_report())
    assert "a\\|b &lt;b&gt;bold&lt;/b&gt; \\`x\\`" in text
    assert "(it has: linux/amd64)<br>hint:" in text
    for line in text.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line)
            header_width = 5 if "Platforms" in text else 4
            assert len(cells) - 2 in (4, header_width), line


def test_totals_line() -> None:
    text = render_summary(fixture_report())
    assert "**7 tags** in 4 images: 2 copied, 3 unchanged, 2 failed · 1.3 GB copied in 3m25s" in text


def test_ratelimit_line_only_when_known() -> None:
    report = fixture_report()
    assert "Rate limit" not in render_summary(report, ratelimits=ratelimits_from(report.to_dict()))
    report.ratelimit = list(RATELIMIT)  # the engine records the quotas it saw on the report
    assert "76 of 100" in render_summary(report, ratelimits=ratelimits_from(report.to_dict()))
    limits = ratelimits_from({"ratelimit": RATELIMIT})
    text = render_summary(report, ratelimits=limits)
    assert "**Rate limit:** 76 of 100 requests remaining per 6h at `registry-1.docker.io`" in text


def test_ratelimit_shapes() -> None:
    assert ratelimits_from({}) == []
    assert ratelimits_from({"ratelimit": None}) == []
    assert ratelimits_from({"ratelimit": "oops"}) == []
    assert ratelimits_from({"ratelimit": {"limit": True}}) == []
    assert ratelimits_from({"ratelimit": {"remaining": "5", "source": "quay.io"}}) == [
        RateLimit(host="quay.io", remaining=5)
    ]
    seen = RateLimit("registry-1.docker.io", 100, 0, 90)
    assert ratelimits_from({"ratelimit": [seen.to_dict()]}) == [seen]
    assert render_ratelimit(seen) == "0 of 100 requests remaining per 90s at `registry-1.docker.io`"
    assert seen.plain() == "0 of 100 requests remaining per 90s at registry-1.docker.io"
    two = ratelimits_from(
        {"ratelimit": [{"limit": 100, "remaining": 7, "host": "a"}, {"limit": 5, "host": "b"}]}
    )
    assert [render_ratelimit(lim) for lim in two] == [
        "7 of 100 requests remaining at `a`",
        "limit 5 requests at `b`",
    ]
    merged = tightest_per_host([RateLimit("a", 100, 50), RateLimit("a", 100, 9), RateLimit("b", None, 3)])
    assert merged == [RateLimit("a", 100, 9), RateLimit("b", None, 3)]


def test_headlines() -> None:
    empty = Report(started=START, finished=START)
    assert render_summary(empty).splitlines()[0] == "## ✅ docker-transfer sync: no images"
    assert "### Images" not in render_summary(empty)
    planned = Report(started=START, finished=START)
    planned.add(TagResult(source="s:1", target="r/t", tag="1", status="planned", bytes_copied=2000))
    text = render_summary(planned, title="nightly")
    assert text.splitlines()[0] == "## 📝 nightly (dry run): 1 image"
    assert "2.0 kB to copy" in text
    ok = Report(started=START, finished=START)
    ok.add(TagResult(source="s:1", target="r/t", tag="1", status="unchanged"))
    assert render_summary(ok).splitlines()[0] == "## ✅ docker-transfer sync: 1 image OK"
    missing = render_summary(ok, missing=["reports/report-1.json"])
    assert missing.splitlines()[0] == "## ❌ docker-transfer sync: 1 report missing"
    assert "| `reports/report-1.json` | - | - | missing report" in missing


def test_partial_note_is_shown_under_its_image() -> None:
    text = render_summary(fixture_report())
    webui = text[text.index("open-webui` ← ") :]
    assert "Note: partial: published without linux/arm64/v8" in webui
    assert text.count("Note:") == 1


def test_note_is_shown() -> None:
    text = render_summary(
        Report(started=START, finished=START), note="Shard 1/4 holds none of the 3 image(s)."
    )
    assert "Shard 1/4 holds none" in text.splitlines()[2]


def test_group_images_by_source_and_target_in_order() -> None:
    images = group_images(fixture_report().results)
    assert [i.target.rsplit("/", 1)[1] for i in images] == ["nginx", "ubuntu", "vllm-openai", "open-webui"]
    assert [i.status for i in images] == ["copied", "unchanged", "failed", "copied"]
    assert [len(i.results) for i in images] == [2, 2, 2, 1]


# --- workflow commands -------------------------------------------------------------------------


def test_escaping_rules() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert escape_data("a:b,c") == "a:b,c"


def test_error_command() -> None:
    line = error_command("registry:5000/ns/app", "failed: 50% of\nlayers, sadly")
    assert line == "::error title=registry%3A5000/ns/app::failed: 50%25 of%0Alayers, sadly"
    assert "\n" not in line


def test_error_annotations_one_per_failed_image() -> None:
    lines = error_annotations(fixture_report())
    assert len(lines) == 1
    (line,) = lines
    assert line.startswith(f"::error title={escape_property(ACR + '/vllm-openai')}::")
    assert "docker.io/vllm/vllm-openai:v0.11.0 -> " in line
    assert ":v0.11.0, latest: platform(s) linux/arm64 not in the source image" in line
    assert "%0Ahint" in line and "\n" not in line


def test_mask_commands() -> None:
    lines = mask_commands(["s3cret-pass", "", "   ", "s3cret-pass", "line one\nline two", "50%"])
    assert lines == [
        "::add-mask::line one%0Aline two",
        "::add-mask::s3cret-pass",
        "::add-mask::line one",
        "::add-mask::line two",
        "::add-mask::50%25",
    ]
    assert mask_commands([]) == []


def test_group_command_and_inert() -> None:
    assert group_command("a\nb") == "::group::a%0Ab"
    text = inert("fine\n  ::add-mask::x\n::error::forged\nsee ##[group]x")
    assert text.splitlines() == ["fine", ">   ::add-mask::x", "> ::error::forged", "see ## [group]x"]
    assert not any(line.lstrip().startswith("::") for line in text.splitlines())
    assert inert("ok\r::warning::forged\r\nend").split("\n") == ["ok", "> ::warning::forged", "end"]


@pytest.mark.parametrize("hostile", ["a|b", "x\ny", "<script>", "`", "\\|"])
def test_hostile_targets_do_not_break_tables(hostile: str) -> None:
    report = Report(started=START, finished=START)
    report.add(TagResult(source=hostile, target=hostile, tag="1", status="failed", error=hostile))
    for line in render_summary(report).splitlines():
        if line.startswith("|"):
            assert len(re.split(r"(?<!\\)\|", line)) - 2 in (4, 5), line
        outside_code = re.sub(r"`[^`]*`", "", line)
        assert "<script>" not in outside_code


# --- the example shown in the READMEs and docs/github-actions.md -------------------------------


def docs_example() -> Report:
    """The seed's four images, one of which has no linux/arm64: the run the docs show."""
    start = datetime(2025, 6, 1, 2, 0, 3, tzinfo=UTC)
    acr = "registry.cn-hangzhou.aliyuncs.com/my-namespace"
    r = Report(started=start, finished=start + timedelta(minutes=6, seconds=41))
    both = ["linux/amd64", "linux/arm64/v8"]

    def add(src: str, tgt: str, tag: str, status: str, plats: list[str], n: int, t: float) -> TagResult:
        result = TagResult(
            source=src,
            target=f"{acr}/{tgt}",
            tag=tag,
            status=status,  # type: ignore[arg-type]
            platforms=plats,
            bytes_copied=n,
            duration_s=t,
        )
        r.add(result)
        return result

    add("docker.io/library/nginx:latest", "nginx", "latest", "copied", both, 72_915_442, 48.3)
    for tag in ("22.04", "jammy", "latest"):
        add("docker.io/library/ubuntu:22.04", "ubuntu", tag, "unchanged", both, 0, 0.6)
    for tag in ("v0.11.0", "latest"):
        vllm = add(
            "docker.io/vllm/vllm-openai:v0.11.0",
            "vllm-openai",
            tag,
            "failed",
            ["linux/amd64", "linux/arm64"],
            0,
            2.1,
        )
        vllm.error = (
            "docker.io/vllm/vllm-openai:v0.11.0@sha256:4f9c…: "
            "platform(s) linux/arm64 not in the source image (it has: linux/amd64)"
        )
    add("ghcr.io/open-webui/open-webui:main", "open-webui", "main", "copied", both, 1_734_529_871, 392.7)
    add("ghcr.io/open-webui/open-webui:main", "open-webui", "latest", "copied", both, 0, 392.7)
    r.ratelimit = [{"host": "registry-1.docker.io", "limit": 100, "remaining": 93, "window_s": 21600}]
    return r


# The READMEs show the demo's own summary instead: tests/test_demo.py compares them with it.
@pytest.mark.parametrize("doc", ["docs/github-actions.md"])
def test_documented_summary_is_what_the_code_renders(doc: str) -> None:
    report = docs_example()
    rendered = render_summary(report, ratelimits=ratelimits_from(report.to_dict()))
    quoted = "\n".join("> " + line if line else ">" for line in rendered.rstrip("\n").split("\n"))
    text = (Path(__file__).parent.parent / doc).read_text(encoding="utf-8")
    assert quoted in text, f"{doc}: the job-summary example no longer matches render_summary; regenerate it"


def test_skipped_platforms_and_warnings_have_their_own_lines() -> None:
    """Report v2: skipped platforms are not an error of a copied row; warnings get a section of their own."""
    report = Report(started=START, finished=START)
    result = TagResult(
        source="ghcr.io/a/b:1",
        target=f"{ACR}/b",
        tag="1",
        status="copied",
        platforms=["linux/amd64"],
        skipped=["linux/s390x"],
        warnings=["acr refused attestation/artifact manifests (DENIED: unknown manifest class | x)"],
    )
    report.add(result)
    text = render_summary(report)
    assert "Skipped (not in the source, allow_partial): `s390x`" in text
    assert "### Warnings" in text
    assert (
        f"| `{ACR}/b` | acr refused attestation/artifact manifests (DENIED: unknown manifest class \\| x) |"
        in text
    )
    assert "⚠️ Warning: acr refused" in text
    assert "Note:" not in text and "Failures" not in text
    assert warning_annotations(report) == [
        f"::warning title={escape_property(ACR + '/b')}::ghcr.io/a/b:1 -> {ACR}/b: acr refused "
        "attestation/artifact manifests (DENIED: unknown manifest class | x)"
    ]


def two_destinations() -> Report:
    report = Report(started=START, finished=START + timedelta(seconds=30))
    for place, status in (("a.example.com/mirror", "copied"), ("b.example.com/copy", "failed")):
        for target in ("nginx", "redis"):
            report.add(
                TagResult(
                    source=f"docker.io/library/{target}:1",
                    target=f"{place}/{target}",
                    tag="1",
                    status=status,  # type: ignore[arg-type]
                    bytes_copied=1000 if status == "copied" else 0,
                    error="500 injected fault" if status == "failed" else None,
                    destination=place,
                )
            )
    return report


def test_a_section_per_destination() -> None:
    text = render_summary(two_destinations())
    assert "### Destinations" in text
    assert "- `a.example.com/mirror`: **2 tags** in 2 images: 2 copied, 0 unchanged, 0 failed" in text
    assert "- `b.example.com/copy`: **2 tags** in 2 images: 0 copied, 0 unchanged, 2 failed" in text
    first = text.index("### Images → `a.example.com/mirror`")
    second = text.index("### Images → `b.example.com/copy`")
    assert first < text.index("a.example.com/mirror/redis", first) < second
    assert "\n### Images\n" not in text


def test_one_destination_has_no_destination_sections() -> None:
    report = two_destinations()
    report.results = [r for r in report.results if r.destination == "a.example.com/mirror"]
    text = render_summary(report)
    assert "### Destinations" not in text and "\n### Images\n" in text


def test_annotations_name_the_destination() -> None:
    lines = error_annotations(two_destinations())
    assert len(lines) == 2 and all("b.example.com/copy/" in line for line in lines)
