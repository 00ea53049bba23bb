"""The fuzz harness (scripts/fuzz.py): a short run finds no crash, and the harness itself
reports the crashes it is there to catch (an exception outside our hierarchy, a hang, a
memory blow-up) when one is injected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import fuzz  # noqa: E402


def test_a_short_fuzz_run_finds_no_crash(tmp_path):
    tally = fuzz.run_batches(fuzz.Options(timeout=30, build_rate=0.05, out=tmp_path / "crashes"),
                             seed=20261122, first_batch=0, cases=300, batch_size=150)
    assert tally.cases == 300
    details = {signature: entry["example"] for signature, entry in tally.crashes.items()}
    assert not tally.crashes, details
    assert tally.ok > 20 and sum(tally.errors.values()) > 100  # both paths were exercised
    assert tally.builds > 0


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
