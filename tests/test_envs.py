"""Every rule's conda env parses, pins its packages and holds what its script imports (transitively in rnce)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

# import name -> package name in conda-forge / PyPI
PACKAGE = {"ants": "antspyx", "yaml": "pyyaml", "bids": "pybids", "sklearn": "scikit-learn",
           "neuroHarmonize": "neuroharmonize", "pandas_plink": "pandas-plink", "nibabel": "nibabel",
           "snakemake": "snakemake", "xarray": "xarray"}
SRC = ROOT / "src"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _module_file(name: str) -> Path | None:
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a script needs, following imports into rnce."""
    seen, todo, needed = set(), [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "rnce":
                parts = name.split(".")
                for i in range(2, len(parts) + 1):
                    found = _module_file(".".join(parts[:i]))
                    if found:
                        todo.append(found)
            elif top not in sys.stdlib_module_names and top != "snakemake":
                needed.add(top)
    return needed


def _env_packages(env: Path) -> dict[str, str]:
    spec = yaml.safe_load(env.read_text())
    packages = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for item in dep.get("pip", []):
                if not item.startswith("-e"):
                    name, _, version = item.partition("==")
                    packages[name.lower()] = version
        else:
            name, _, version = dep.partition("=")
            packages[name.lower()] = version
    return packages


def _rules():
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?:rule|checkpoint) ", smk.read_text(), flags=re.M)[1:]:
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            if env and script:
                yield block.split(":")[0], (smk.parent / env.group(1)).resolve(), (smk.parent / script.group(1)).resolve()


@pytest.mark.parametrize("rule,env,script", list(_rules()), ids=lambda x: x if isinstance(x, str) else "")
def test_env_holds_what_the_script_imports(rule, env, script):
    packages = _env_packages(env)
    assert all(v for k, v in packages.items() if k != "python"), f"{env.name}: unpinned packages"
    assert "python" in packages
    missing = {PACKAGE.get(m, m).lower() for m in third_party_imports(script)} - set(packages)
    assert not missing, f"rule {rule}: {env.name} lacks {sorted(missing)}"
