"""The fuzz harness (scripts/fuzz.py): a short run finds no crash, and the harness itself
reports the crashes it is there to catch (an exception outside our hierarchy, a hang, a
memory blow-up) when one is injected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import fuzz  # noqa: E402


def test_a_short_fuzz_run_finds_no_crash(tmp_path):
    # In a worker process of its own, as a campaign runs, so that its memory is its own.
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--cases", "300", "--seed", "20261122",
         "--batch-size", "150", "--build-rate", "0.05", "--timeout", "30",
         "--out", str(tmp_path / "crashes")],
        capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    summary = re.search(r"^300 cases in .*?: (\d+) converted, (\d+) refused with a clean error, "
                        r"(\d+) Keras builds, 0 crashes$", done.stdout, re.M)
    assert summary, done.stdout
    converted, refused, builds = map(int, summary.groups())
    assert converted > 20 and refused > 100 and builds > 0  # every path was exercised
    exports = re.search(r"^artifacts written and checked: (.*)$", done.stdout, re.M)
    assert exports, done.stdout  # some built models were written in a runtime format
    written = {name: int(n) for name, n in (item.split() for item in exports.group(1).split(", "))}
    assert set(written) <= set(fuzz.RUNTIME_FORMATS) and sum(written.values()) > 0


@pytest.mark.parametrize("inject, options, signature", [
    ("exception", [], "ZeroDivisionError at"),
    ("hang", ["--timeout", "1"], "hang at"),
    ("memory", ["--memory-mb", "600"], "memory"),
])
def test_the_harness_reports_an_injected_crash(tmp_path, inject, options, signature):
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--cases", "8", "--build-rate", "0",
         "--batch-size", "4", "--out", str(tmp_path), "--inject", inject, *options],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "8 cases" in done.stdout and "1 crashes" in done.stdout, done.stdout
    assert f"CRASH x1: {signature}" in done.stdout, done.stdout
    saved = [p for p in tmp_path.iterdir() if p.name.startswith("case-3-")]
    assert saved and (saved[0] / "case.json").is_file(), list(tmp_path.iterdir())
