"""Print the project's dependencies pinned to their declared minimums (`name==minimum`), one
a line, from pyproject.toml: the oldest versions CI installs together (.ci/run)."""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
for requirement in project["project"]["dependencies"]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", requirement.strip())
    if not match:
        sys.exit(f"minimums: expected NAME>=VERSION in pyproject's dependencies, got {requirement!r}")
    print(f"{match[1]}=={match[2]}")
