"""Every snakemake command README.md and config/README.md show works as written: Snakemake 9 reads its
targets where the docs mean them, and the command plans (a dry run) from a fresh folder."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY_CONFIG

DOCS = [ROOT / "README.md", ROOT / "config" / "README.md"]
# stand-ins for the user's own files the docs name
OWN_FILES = {"my_cohorts.yaml": str(TINY_CONFIG), "my.yaml": str(TINY_CONFIG)}
# what cannot run here: conda is not installed, --report needs a finished run, --unlock needs a lock
NOT_RUN_HERE = ("--sdm", "--software-deployment-method", "--report", "--unlock", "--conda-create-envs-only")


def doc_commands() -> list[tuple[str, str]]:
    commands = []
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("snakemake "):
                    commands.append((doc.name, line))
        commands += [(doc.name, c) for c in re.findall(r"`(snakemake [^`]+)`", text)]
    return commands


def _tokens(command: str) -> list[str]:
    return [OWN_FILES.get(t, t) for t in shlex.split(command)[1:]]


@pytest.mark.parametrize("doc,command", doc_commands(), ids=lambda x: x if "snakemake" in x else "")
def test_documented_command_reads_its_targets_as_targets(doc, command):
    from snakemake.cli import get_argument_parser

    tokens = _tokens(command)
    args = get_argument_parser().parse_args(tokens)
    meant = {t for t in tokens if t == "all" or t.startswith("results/")}
    assert meant <= set(args.targets or []), f"{doc}: `{command}` does not read {sorted(meant)} as targets"
    for path in args.configfile or []:
        assert (ROOT / path).exists(), f"{doc}: `{command}` reads {path} as a config file"


def test_documented_commands_plan_from_a_fresh_folder(tmp_path):
    """A dry run of each command the docs show (those this machine can run), as a user types it in a fresh
    checkout; `--profile slurm` finds the profile `make slurm-profile` links."""
    checkout = tmp_path / "rnce"
    shutil.copytree(ROOT, checkout, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "results*", ".snakemake", "__pycache__", ".pytest_cache"))
    (tmp_path / "xdg" / "snakemake").mkdir(parents=True)
    os.symlink(ROOT / "profiles" / "slurm", tmp_path / "xdg" / "snakemake" / "slurm")
    environ = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = 0
    for doc, command in doc_commands():
        tokens = _tokens(command)
        if any(t.startswith(NOT_RUN_HERE) for t in tokens):
            continue
        result = subprocess.run(["snakemake", *tokens, "-n"], cwd=checkout, env=environ, capture_output=True,
                                text=True)
        assert result.returncode == 0, f"{doc}: `{command}` fails:\n{(result.stdout + result.stderr)[-2500:]}"
        ran += 1
    assert ran >= 6
