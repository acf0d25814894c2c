"""``python tests/lower_bound.py NAME`` prints ``NAME==V``, the oldest release of a dependency
that pyproject.toml's bounds allow, so that `make check-litert-min` tests what the bounds claim."""
import re
import sys
import tomllib
from pathlib import Path

name = sys.argv[1]
pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
for requirement in pyproject["project"]["dependencies"]:
    found = re.match(rf"{re.escape(name)}\s*>=\s*([0-9][0-9.]*)", requirement)
    if found:
        print(f"{name}=={found.group(1)}")
        break
else:
    sys.exit(f"{name} has no lower bound (>=) in pyproject.toml's dependencies")
