"""`--shard I/N`: parsing, exact coverage, stability, and the CLI's handling of it."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from docker_transfer.cli import main
from docker_transfer.errors import UsageError
from docker_transfer.shard import MAX_SHARDS, Shard, parse_shard, shard_of

TARGETS = [f"image-{i}" for i in range(60)] + ["nginx", "ubuntu", "vllm-openai", "open-webui", "a/b", "日本"]


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 2 / 10 ", (2, 10))])
def test_parse_valid(text: str, expected: tuple[int, int]) -> None:
    shard = parse_shard(text)
    assert (shard.index, shard.count) == expected
    assert str(shard) == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4/4", "between 0 and 3"),
        ("1/0", "between 1 and"),
        ("0/0", "between 1 and"),
        ("-1/4", "expected INDEX/COUNT"),
        ("1", "expected INDEX/COUNT"),
        ("1/", "expected INDEX/COUNT"),
        ("a/b", "expected INDEX/COUNT"),
        ("1.0/2", "expected INDEX/COUNT"),
        ("1/2/3", "expected INDEX/COUNT"),
        ("", "expected INDEX/COUNT"),
        ("\u0661/\u0662", "expected INDEX/COUNT"),  # Arabic-Indic digits are not accepted
        (f"0/{MAX_SHARDS + 1}", "between 1 and"),
        ("0/" + "9" * 5000, "expected INDEX/COUNT"),
    ],
)
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_shard(text)
    assert message in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_cover_every_target_exactly_once(count: int) -> None:
    picked = Counter[str]()
    for index in range(count):
        picked.update(Shard(index, count).select(TARGETS, key=lambda t: t))
    assert picked == Counter(TARGETS)


def test_select_keeps_order_and_all_tags_of_a_target_together() -> None:
    entries = [("nginx", "1"), ("ubuntu", "22.04"), ("nginx", "latest"), ("redis", "7")]
    for index in range(3):
        chosen = Shard(index, 3).select(entries, key=lambda e: e[0])
        assert chosen == [e for e in entries if e in chosen]  # input order kept
        targets = {t for t, _ in chosen}
        assert all(e in chosen for e in entries if e[0] in targets)


def test_stable_independent_of_order() -> None:
    shuffled = TARGETS[:]
    random.Random(7).shuffle(shuffled)
    for count in (2, 5):
        for index in range(count):
            a = set(Shard(index, count).select(TARGETS, key=str))
            b = set(Shard(index, count).select(shuffled, key=str))
            assert a == b


def test_known_values_pin_the_hash() -> None:
    # sha256 of the UTF-8 name, first 8 bytes big-endian, modulo N. Changing this would move images
    # between shards on every user's runners, so the values are pinned.
    names = ("nginx", "ubuntu", "vllm-openai", "open-webui")
    assert [shard_of(n, 4) for n in names] == [0, 0, 0, 2]
    assert [shard_of(n, 7) for n in names] == [6, 5, 4, 0]
    digest = hashlib.sha256(b"open-webui").digest()
    assert shard_of("open-webui", 1000) == int.from_bytes(digest[:8], "big") % 1000


def test_stable_across_hash_seeds() -> None:
    code = (
        "from docker_transfer.shard import shard_of;"
        "print([shard_of(n, 5) for n in ['nginx', 'ubuntu', 'vllm-openai', 'open-webui', 'x']])"
    )
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert outputs == {
        str([shard_of(n, 5) for n in ["nginx", "ubuntu", "vllm-openai", "open-webui", "x"]]) + "\n"
    }


def test_spreads_reasonably() -> None:
    counts = Counter(shard_of(f"repo-{i}", 4) for i in range(400))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 60


def test_shard_of_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("x", 0)


# --- the CLI -----------------------------------------------------------------------------------


def _config(tmp_path: Path, targets: list[str]) -> Path:
    entries = [
        {"source": f"127.0.0.1:9/{t}:1", "target": t, "tags": ["1"], "architectures": ["amd64"]}
        for t in targets
    ]
    path = tmp_path / "images.json"
    path.write_text(json.dumps(entries))
    return path


def test_cli_bad_shard_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, ["nginx"])
    code = main(["sync", "--config", str(config), "--target-namespace", "ns", "--shard", "2/2"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--shard 2/2" in err and "between 0 and 1" in err


def test_cli_empty_shard_exits_0_with_note_and_empty_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    config = _config(tmp_path, ["nginx"])
    owner = shard_of("nginx", 2)
    report = tmp_path / "report.json"
    args = ["sync", "--config", str(config), "--target-registry", "127.0.0.1:9", "--target-namespace", "ns"]
    # the registry at 127.0.0.1:9 does not exist: an empty shard must not contact it
    code = main([*args, "--shard", f"{1 - owner}/2", "--report", str(report)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "holds none of the 1 image(s)" in err
    data = json.loads(report.read_text())
    assert data["results"] == [] and data["finished"] is not None
    assert "(no results)" in out


def test_cli_empty_shard_on_github_writes_a_summary_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    config = _config(tmp_path, ["nginx", "ubuntu"])
    owners = {shard_of("nginx", 3), shard_of("ubuntu", 3)}
    empty = min({0, 1, 2} - owners)
    args = ["sync", "--config", str(config), "--target-registry", "127.0.0.1:9", "--target-namespace", "ns"]
    code = main([*args, "--shard", f"{empty}/3"])
    _, err = capsys.readouterr()
    assert code == 0, err
    text = summary.read_text()
    assert text.startswith(f"## ✅ docker-transfer sync · shard {empty}/3: no images")
    assert f"Shard {empty}/3 holds none of the 2 image(s)" in text
    assert "::error" not in err
