"""The cluster scripts in scripts/: they parse, name real sub-commands, and have well-formed #SBATCH lines.

``scripts/scaling.sh`` is also run end to end: once with a fake launcher
(no MPI; checks the loop and the efficiency table), and once for real on 1
and 2 ranks with a tiny benchmark selection.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mpi4py import MPI

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
BATCH_SCRIPTS = ["slurm_demo.sbatch", "slurm_run.sbatch"]
SHELL_SCRIPTS = BATCH_SCRIPTS + ["scaling.sh"]
CLUSTER_SCRIPTS = ["slurm_cluster.sh", "multinode_cluster.sh", "multinode-tests.sh", "mpi-pytest.sh", "coverage.sh"]
MPIEXEC = Path(sys.executable).parent / "mpiexec"

pytestmark = pytest.mark.skipif(
    MPI.COMM_WORLD.Get_size() > 1, reason="starts its own processes; serial session only"
)

SUBCOMMAND_USE = re.compile(r"python3?\s+-m\s+mpi_qinfer\s+([A-Za-z][\w-]*)")
#: "#SBATCH --long-option=value", "#SBATCH --flag" or "#SBATCH -x value"; nothing after it.
SBATCH_LINE = re.compile(r"^#SBATCH (--[a-z][a-z0-9-]*(=\S+)?|-[A-Za-z] \S+)$")
SBATCH_TIME = re.compile(r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$")


def _bash():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    return bash


@pytest.mark.parametrize("name", SHELL_SCRIPTS + CLUSTER_SCRIPTS)
def test_script_parses(name):
    done = subprocess.run([_bash(), "-n", str(SCRIPTS / name)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", SHELL_SCRIPTS + CLUSTER_SCRIPTS)
def test_script_has_a_bash_shebang(name):
    first = (SCRIPTS / name).read_text().splitlines()[0]
    assert first in ("#!/bin/bash", "#!/usr/bin/env bash"), first


def available_subcommands() -> set[str]:
    """The sub-commands listed by `python -m mpi_qinfer --help` (skips if the CLI does not run)."""
    done = subprocess.run([sys.executable, "-m", "mpi_qinfer", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env=dict(os.environ, COLUMNS="100"))
    if done.returncode != 0:
        pytest.skip(f"`python -m mpi_qinfer --help` does not run yet: {done.stderr.strip()[-300:]}")
    text = done.stdout
    choices = re.search(r"\{([\w,-]+)\}", text)
    if choices:
        return set(choices.group(1).split(","))
    # metavar="COMMAND": one sub-command per line, indented by 4, under "positional arguments".
    section = text.split("positional arguments:", 1)[-1].split("options:", 1)[0]
    found = set(re.findall(r"^ {4}([A-Za-z][\w-]*)(?:\s|$)", section, flags=re.MULTILINE))
    assert found, f"could not find the sub-commands in:\n{text}"
    return found


@pytest.mark.parametrize("name", SHELL_SCRIPTS)
def test_every_subcommand_used_exists(name):
    used = set(SUBCOMMAND_USE.findall((SCRIPTS / name).read_text()))
    assert used, f"{name} runs no `python -m mpi_qinfer` sub-command"
    missing = used - available_subcommands()
    assert not missing, f"{name} uses sub-commands that `python -m mpi_qinfer --help` does not list: {missing}"


def test_batch_scripts_run_the_intended_commands():
    assert re.search(r"^srun .*python -m mpi_qinfer demo\b", (SCRIPTS / "slurm_demo.sbatch").read_text(), re.M)
    assert re.search(r"^srun .*python -m mpi_qinfer run\b", (SCRIPTS / "slurm_run.sbatch").read_text(), re.M)


@pytest.mark.parametrize("name", BATCH_SCRIPTS)
def test_batch_scripts_have_slurm_end_the_job_when_a_rank_dies(name):
    # Without it a rank that exits without MPI_Abort can leave the others waiting until the time limit.
    text = (SCRIPTS / name).read_text()
    assert re.search(r"^srun_options=\(--kill-on-bad-exit=1\)$", text, re.M), name
    assert all('"${srun_options[@]}"' in line for line in text.splitlines() if line.startswith("srun ")), name


@pytest.mark.parametrize("name", BATCH_SCRIPTS)
def test_sbatch_lines_are_well_formed(name):
    lines = (SCRIPTS / name).read_text().splitlines()
    first_command = next(
        (i for i, line in enumerate(lines) if i > 0 and line.strip() and not line.lstrip().startswith("#")),
        len(lines),
    )
    options = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip("#")
        if not stripped.startswith("SBATCH"):
            continue
        active = line.startswith("#SBATCH")
        candidate = "#" + stripped  # a disabled "##SBATCH" line must be right once enabled too
        assert line == line.strip(), f"{name}:{number}: #SBATCH must start the line, no indentation"
        assert SBATCH_LINE.match(candidate), f"{name}:{number}: malformed (one option, no comment): {line!r}"
        if active:
            # sbatch stops reading options at the first line that is not a comment.
            assert number - 1 < first_command, f"{name}:{number}: #SBATCH after the first command is ignored"
            key, _, value = candidate.split(" ", 1)[1].partition("=")
            assert key not in options, f"{name}:{number}: {key} given twice"
            options[key] = value
    assert "--time" in options and SBATCH_TIME.match(options["--time"]), f"{name}: needs a valid --time"
    assert "--ntasks" in options or "--ntasks-per-node" in options, f"{name}: say how many tasks"
    assert options.get("--cpus-per-task") == "1", f"{name}: one core per rank"


@pytest.mark.parametrize("name", BATCH_SCRIPTS)
def test_batch_scripts_say_what_to_edit(name):
    text = (SCRIPTS / name).read_text()
    lines = text.splitlines()
    for what in ("--account", "--partition", "--time", "MODULES=", "VENV="):
        # The setting itself, with an "EDIT" note on it or on one of the few lines above.
        near_edit = [i for i, line in enumerate(lines) if what in line and not line.startswith("#   ")
                     and any("EDIT" in above for above in lines[max(0, i - 4) : i + 1])]
        assert near_edit, f"{name}: {what} has no EDIT note next to it"
    assert "OMP_NUM_THREADS=1" in text and "OPENBLAS_NUM_THREADS=1" in text


# ------------------------------------------------------------------ scaling.sh
FAKE_LAUNCHER = """#!{python}
import json, sys
ranks, argv = int(sys.argv[1]), sys.argv[2:]
assert argv[1:5] == ["-m", "mpi_qinfer", "bench", "--quick"], argv
path = argv[argv.index("--json") + 1]
cases = [{{"name": "costly-1e4x1", "serial_median_s": 1.0, "proxy_median_s": 1.0 / (0.5 * ranks)}}]
json.dump({{"ranks": ranks, "cases": cases, "extra": "ignored"}}, open(path, "w"))
"""


def _scaling(tmp_path, *args, **env):
    environ = dict(os.environ, **env)
    return subprocess.run([_bash(), str(SCRIPTS / "scaling.sh"), *map(str, args)], capture_output=True,
                          text=True, cwd=tmp_path, env=environ, timeout=600)


def test_scaling_runs_powers_of_two_and_tabulates(tmp_path):
    launcher = tmp_path / "fake-launcher"
    launcher.write_text(FAKE_LAUNCHER.format(python=sys.executable))
    launcher.chmod(0o755)
    done = _scaling(tmp_path, 6, tmp_path / "out", LAUNCHER=str(launcher), PYTHON=sys.executable)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == [
        "bench-n1.json", "bench-n2.json", "bench-n4.json", "bench-n6.json"]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("costly-1e4x1")]
    assert [row[1] for row in rows] == ["1", "2", "4", "6"]
    assert all(row[-1] == "50.0%" for row in rows), done.stdout  # efficiency = serial / (ranks * proxy)


def test_scaling_rejects_bad_arguments(tmp_path):
    assert _scaling(tmp_path).returncode == 2
    assert _scaling(tmp_path, "zero", tmp_path / "out").returncode == 2


def test_scaling_reports_a_failed_run(tmp_path):
    done = _scaling(tmp_path, 2, tmp_path / "out", LAUNCHER="false", PYTHON=sys.executable)
    assert done.returncode != 0
    assert "no benchmark results" in done.stderr


@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
def test_scaling_with_the_real_benchmark(tmp_path):
    if "bench" not in available_subcommands():
        pytest.skip("no bench sub-command yet")
    done = _scaling(tmp_path, 2, tmp_path / "out", LAUNCHER=f"{MPIEXEC} -n", PYTHON=sys.executable,
                    BENCH_ARGS="--cases cheap-1e3x1", TIMEOUT="240")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    for ranks in (1, 2):
        data = json.loads((tmp_path / "out" / f"bench-n{ranks}.json").read_text())
        assert data["ranks"] == ranks
        assert {"name", "serial_median_s", "proxy_median_s"} <= set(data["cases"][0])
    table = [line.split() for line in done.stdout.splitlines() if line.startswith("cheap-1e3x1 ")]
    assert [row[1] for row in table] == ["1", "2"]


def test_the_package_has_no_import_cycle():
    import subprocess

    script = Path(__file__).parents[2] / "scripts" / "import_cycles.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert "0 import cycle(s)" in done.stdout


def test_the_package_keeps_its_import_rules():
    script = SCRIPTS / "import_rules.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    assert "0 broken import rule(s)" in done.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("models/base.py", "from mpi4py import MPI", "models imports mpi4py at module level"),
    ("smc/updater.py", "import mpi4py.MPI", "smc imports mpi4py.MPI at module level"),
    ("engine/protocol.py", "from ..smc import updater", "engine never imports smc"),
    ("engine/plans.py", "from ..models.base import Model", "engine never imports models"),
    ("runtime/launcher.py", "from ..engine import core", "runtime imports mpi_qinfer.engine.core, a layer above"),
    ("parallel/routes.py", "from ..distributed.updater import DistributedSMCUpdater", "a layer above"),
    ("smc/heuristics.py", "from .. import SMCUpdater", "smc imports the package root"),
    ("errors.py", "from .models import base", "errors sits below every layer"),
])
def test_the_import_rules_catch_a_forbidden_import(tmp_path, module, line, broken):
    import shutil

    copy = tmp_path / "mpi_qinfer"
    shutil.copytree(Path(__file__).parents[2] / "mpi_qinfer", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    done = subprocess.run([sys.executable, str(SCRIPTS / "import_rules.py"), str(copy)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stdout
    assert broken in done.stdout and module in done.stdout, done.stdout


@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
def test_call_timeline_places_every_rank_on_the_roots_clock():
    env = dict(os.environ, MPIEXEC_TIMEOUT="120")
    done = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(SCRIPTS / "call_timeline.py"),
                           "--particles", "1000", "--outcomes", "3", "--calls", "60"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for method, rank in (("proxy", 0), ("proxy", 1), ("floor", 0), ("floor", 1)):
        (line,) = [line for line in lines if line.split()[:3] == [method, "rank", f"{rank}:"]]
        stamps = dict(item.split("=") for item in line.split()[3:])
        assert "Scatterv<#1" in stamps and "Scatterv>#1" in stamps
        assert float(stamps["Scatterv<#1"]) <= float(stamps["Scatterv>#1"])
    assert re.search(r"median per call: proxy [\d.]+ us, engine [\d.]+ us, floor [\d.]+ us", done.stdout)
    single = subprocess.run([sys.executable, str(SCRIPTS / "call_timeline.py")], capture_output=True, text=True,
                            timeout=60)
    assert single.returncode == 2 and "at least 2 ranks" in single.stderr


def test_root_costs_models_the_per_worker_terms():
    done = subprocess.run([sys.executable, str(SCRIPTS / "root_costs.py"), "--ranks", "2,4"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.rsplit(None, 3)[0]: [float(x) for x in line.rsplit(None, 3)[1:]] for line in
            done.stdout.splitlines()[2:]}
    assert set(rows) == {"receives (hit)", "receives (built)", "post", "staged"}
    assert all(value >= 0 for value in rows["post"][:2])


def _bench_ab():
    """scripts/bench_ab.py as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_ab", SCRIPTS / "bench_ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_ab_alternates_which_version_runs_first():
    assert _bench_ab().order(3) == ["before", "after", "after", "before", "before", "after"]


def test_bench_ab_compares_pairs_by_their_ratio_and_the_fastest_calls():
    bench_ab = _bench_ab()
    result = {"cases": [{"name": "c", "proxy_median_s": 2e-6, "floor_median_s": 1e-6, "proxy_min_s": 1e-6}],
              "smc": None}
    before = bench_ab.times(result)
    assert before == {"c:proxy_median": 2e-6, "c:floor_median": 1e-6, "c:proxy_min": 1e-6, "c:proxy/floor": 2.0}
    # Two pairs on a machine that runs the second pair twice as slow: the pairs' ratios are 1.1 each.
    slow = {name: 2 * value for name, value in before.items()}
    runs = [("before", before), ("after", {k: 1.1 * v for k, v in before.items()}),
            ("after", {k: 1.1 * v for k, v in slow.items()}), ("before", slow)]
    lines, worst = bench_ab.table(runs)
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["c:proxy_median"][2] == "1.100" and rows["c:proxy_median"][3] == "1.100-1.100"
    assert rows["c:proxy_min"][:3] == ["1.00", "1.10", "1.100"]  # the fastest of each version
    assert worst == pytest.approx(1.1)


def test_bench_ab_unpacks_a_git_revision(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tree = _bench_ab().source_tree("HEAD", str(tmp_path))
    assert (Path(tree) / "mpi_qinfer" / "__init__.py").is_file()
    assert _bench_ab().source_tree(str(REPO), str(tmp_path)) == str(REPO)


def test_mutation_score_counts_killed_timeouts_and_crashes_as_detected():
    import importlib.util
    spec = importlib.util.spec_from_file_location("mutation_score", SCRIPTS / "mutation_score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = ["    mpi_qinfer.engine.core.xǁEngineǁcall__mutmut_1: killed",
             "    mpi_qinfer.engine.core.xǁEngineǁcall__mutmut_2: survived",
             "    mpi_qinfer.engine.core.x_helper__mutmut_1: timeout",
             "    mpi_qinfer.engine.plans.x_even__mutmut_7: segfault",
             "    mpi_qinfer.engine.plans.x_even__mutmut_8: no tests",
             "unrelated output"]
    rows = module.report(module.tally(lines))
    assert rows[0].split()[:3] == ["mpi_qinfer.engine.core", "2/3", "66.7%"] and "survived 1" in rows[0]
    assert rows[1].split()[:3] == ["mpi_qinfer.engine.plans", "1/2", "50.0%"] and "no tests 1" in rows[1]
    assert rows[2].split()[:3] == ["all", "3/5", "60.0%"]
