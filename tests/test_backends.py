"""The golden suite again on the PyTorch backend: converted models are not tied to TensorFlow.

Keras fixes its backend at import, so the suite runs in a subprocess with KERAS_BACKEND=torch.
It needs torch (`pip install torch==2.13.0`, a CPU build); in CI its absence is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_golden_suite_passes_on_torch_backend():
    if importlib.util.find_spec("torch") is None:
        message = "torch is not installed: pip install torch==2.13.0"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = dict(os.environ, KERAS_BACKEND="torch")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "test_golden.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 20, summary
