"""The per-stage conda envs: every env parses and pins its packages at the versions the tests ran with;
every rule's env holds what its script imports (transitively in rnce) and the programs it calls; the
post-deploy script that installs rnce into them works."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
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
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
# program a module runs (a string literal in it) -> the conda package that provides it
PROGRAMS = {"plink2": "plink2", "plink1.9": "plink"}


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


def reached_files(script: Path) -> set[Path]:
    """The script and every rnce module it imports, transitively."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "rnce":
                todo += [f for i in range(2, len(parts) + 1) if (f := _module_file(".".join(parts[:i])))]
    return seen


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a script needs, following imports into rnce."""
    tops = {name.split(".")[0] for path in reached_files(script) for name in _imports(path)}
    return {top for top in tops if top not in sys.stdlib_module_names and top not in ("rnce", "snakemake")}


def programs_called(script: Path) -> set[str]:
    """Programs named in the rnce modules a script reaches (PLINK is run by rnce.genetics.plink.run)."""
    return {node.value for path in reached_files(script) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value in PROGRAMS}


def _lock(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower(): version for name, _, version in (line.partition("==") for line in lines if line)}


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
def test_env_holds_what_the_script_imports_and_runs(rule, env, script):
    packages = _env_packages(env)
    missing = {PACKAGE.get(m, m).lower() for m in third_party_imports(script)} - set(packages)
    assert not missing, f"rule {rule}: {env.name} lacks {sorted(missing)}"
    programs = {PROGRAMS[p] for p in programs_called(script)} - set(packages)
    assert not programs, f"rule {rule}: {env.name} lacks the programs' packages {sorted(programs)}"
    # the package itself comes from the post-deploy script (Snakemake runs <env>.post-deploy.sh)
    deploy = env.with_name(env.stem + ".post-deploy.sh")
    assert deploy.resolve() == ROOT / "envs" / "install_rnce.sh", f"{env.name}: no post-deploy script installs rnce"


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_parses_and_pins_the_tested_versions(env):
    spec = yaml.safe_load(env.read_text())
    assert spec["name"] == f"rnce-{env.stem.replace('_', '-')}" and "conda-forge" in spec["channels"]
    packages = _env_packages(env)
    assert packages.get("python") == "3.11"
    assert all(packages.values()), f"{env.name}: unpinned {[k for k, v in packages.items() if not v]}"
    assert not any(isinstance(d, dict) and any(i.startswith("-e") for i in d.get("pip", []))
                   for d in spec["dependencies"]), f"{env.name}: an editable install in the env file"
    # the envs pin what the tests here ran with (.venv from requirements.lock, .venv-ldsc from its own lock)
    lock = _lock(ROOT / ("requirements-ldsc.lock" if env.stem == "ldsc" else "requirements.lock"))
    differ = {k: (v, lock[k]) for k, v in packages.items() if k in lock and lock[k] != v}
    assert not differ, f"{env.name}: (env, lock) versions differ: {differ}"


def test_post_deploy_script_installs_rnce_editable(tmp_path):
    """What Snakemake runs in a fresh env: rnce from this checkout, nothing else."""
    import setuptools

    env = tmp_path / "env"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(env)], check=True)
    python = env / "bin" / "python"
    # the env files pin a setuptools that builds editable installs alone (>= 70.1): this one's
    subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"], check=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    source = Path(setuptools.__file__).parents[1]
    for path in [source / "setuptools", source / "_distutils_hack", *source.glob("setuptools-*.dist-info")]:
        shutil.copytree(path, Path(site) / path.name)
    shutil.copy(source / "distutils-precedence.pth", site)
    environ = {**os.environ, "PATH": f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}", "RNCE_SOURCE": str(ROOT)}
    environ.pop("PYTHONPATH", None)
    result = subprocess.run(["bash", str(ROOT / "envs" / "install_rnce.sh")], env=environ, capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import rnce; print(rnce.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert Path(where) == SRC / "rnce" / "__init__.py"
    unset = subprocess.run(["bash", str(ROOT / "envs" / "install_rnce.sh")], capture_output=True, text=True,
                           env={k: v for k, v in environ.items() if k != "RNCE_SOURCE"})
    assert unset.returncode != 0 and "RNCE_SOURCE" in unset.stderr
