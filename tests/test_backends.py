"""The golden suite again on the PyTorch and JAX backends: converted models are not tied to
TensorFlow.

Keras fixes its backend at import, so the suite runs in a subprocess with KERAS_BACKEND set.
It needs the backend's package (torch: `pip install torch==2.13.0`, a CPU build; jax: the
export group's `jax`); in CI its absence is a failure.
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
INSTALL = {"torch": "pip install torch==2.13.0", "jax": "pip install jax"}


def require_backend(backend: str) -> None:
    """Skip (or, under CI, fail) when the backend's package is missing."""
    if importlib.util.find_spec(backend) is None:
        message = f"{backend} is not installed: {INSTALL[backend]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("backend", sorted(INSTALL))
def test_golden_suite_passes_on_backend(backend):
    require_backend(backend)
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "test_golden.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 20, summary
