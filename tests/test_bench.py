"""scripts/bench.py measures each process's own peak RSS, not the one Linux carries over from
the process that started it (no timing here: speed figures live in the bench only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(),
                                reason="peak RSS is read from Linux's /proc")
MIB = 2 ** 20
PARENT_MIB = 400


@pytest.fixture
def large_parent():
    """This process at a high-water mark of PARENT_MIB more than a small child needs."""
    held = bytearray(PARENT_MIB * MIB)
    held[::4096] = b"\1" * len(held[::4096])  # every page resident
    yield held


def test_child_peak_is_its_own(large_parent, tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"\0" * 1024)
    result = bench.measure("raw_read", str(small), runs=1)
    assert result["peak_rss_bytes"] == result["own_peak_bytes"]
    assert result["peak_of"] == "process"
    assert result["peak_rss_bytes"] < PARENT_MIB / 2 * MIB, result


def test_subprocess_reports_its_own_peak(large_parent, tmp_path):
    """A Python process started by the child (as the torch export is) reports its own peak
    through the hook, below what the child holds."""
    code = ("import subprocess, sys; held = bytearray(300 * 2**20); held[::4096] = b'\\1' * "
            "len(held[::4096]); subprocess.run([sys.executable, '-c', 'pass'], check=True)")
    subprocess.run([sys.executable, "-c", code], env=bench.child_environment(
        str(tmp_path)), check=True)
    records = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
    assert len(records) == 2
    inner = next(r for r in records if r["ppid"] != os.getpid())
    outer = next(r for r in records if r["ppid"] == os.getpid())
    assert outer["peak_bytes"] > 300 * MIB
    assert inner["peak_bytes"] < 150 * MIB, records
    assert bench.subprocess_peaks(str(tmp_path), outer["pid"]) == [inner]
