"""The documentation: every code example runs, the doctests pass, and Sphinx builds with -W.

Python code in ``docs/`` is either a ``>>>`` doctest in a page (serial; run
here with :mod:`doctest`) or a file under ``docs/examples/`` shown with
``literalinclude`` (run here in a subprocess: MPI examples under
``timeout 120 mpiexec -n 2``). These tests start their own processes, so they
run in the serial pytest session only.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mpi4py import MPI

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
TIMEOUT = 120  # seconds per example run; each takes one or two

pytestmark = pytest.mark.skipif(
    MPI.COMM_WORLD.Get_size() > 1, reason="starts its own mpiexec and Sphinx processes; serial session only"
)

#: Examples that need more than mpi_qinfer; everything else in docs/examples runs under mpiexec -n 2.
NEEDS_QINFER = {"migration_keep_qinfer.py"}
NEEDS_IPYPARALLEL_CLUSTER = {"migration_before.py"}
#: Examples that start their own workers (MPIParallelizedModel.spawn, ipyparallel's MPI engines): one plain
#: process each, and what it must print.
RUN_ALONE = {"notebook_spawn.py": "engine: 4 ranks", "notebook_ipyparallel.py": "on 2 ranks"}
#: Examples that also run as a single plain process (the docs say so).
ALSO_SERIAL = {"quickstart.py"}
#: Text each MPI example must print (checks that it did what the docs say).
EXPECTED_OUTPUT = {
    "quickstart.py": "on 2 rank(s)",
    "explicit_form.py": "ranks done: [0, 1]",
    "tuning.py": "split='experiments'",
    "reproducibility.py": "2 rank(s): parallel",
    "sync_model.py": "rows that were stale before sync_model(): 5000",
    "several_models.py": "shared engine: (1, 5000, 2) (2, 5000, 2)\ngroup 0: 1 rank(s), Pr(0) = 0.9777\n"
                         "group 1: 1 rank(s), Pr(0) = 0.9127",
    "errors.py": "failed on ranks [1] in likelihood",
    "idle_modes.py": "us per call",
    "migration_after.py": "on 2 ranks",
    "contract.py": "ZeroDivisionError on ranks [0, 1]",
    "trial_farm.py": "20 trials on 2 rank(s)",
}

ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.py"))
MPI_EXAMPLES = [name for name in ALL_EXAMPLES if name not in NEEDS_QINFER | NEEDS_IPYPARALLEL_CLUSTER | set(RUN_ALONE)]
PAGES = sorted(DOCS.glob("*.rst"))


def _run(command, **kwargs):
    env = dict(os.environ, MPIEXEC_TIMEOUT=str(TIMEOUT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("MPI_QINFER_IDLE", None)
    env.pop("MPI_QINFER_BACKOFF_MAX", None)
    return subprocess.run(["timeout", "-k", "10", str(TIMEOUT), *map(str, command)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=TIMEOUT + 30, **kwargs)


def _check(done):
    assert done.returncode == 0, f"exit status {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


# ------------------------------------------------------------------ examples
def test_every_example_is_classified_and_expected():
    assert ALL_EXAMPLES, "no examples found"
    for name in MPI_EXAMPLES:
        assert name in EXPECTED_OUTPUT, f"docs/examples/{name}: add its expected output to EXPECTED_OUTPUT"


def test_every_example_is_shown_in_the_docs():
    text = "\n".join(page.read_text() for page in PAGES)
    for name in ALL_EXAMPLES:
        assert f"examples/{name}" in text, f"docs/examples/{name} is not included or linked from any page"


@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
@pytest.mark.parametrize("name", MPI_EXAMPLES)
def test_mpi_example_runs_on_two_ranks(name):
    out = _check(_run([MPIEXEC, "-n", "2", sys.executable, EXAMPLES / name]))
    assert EXPECTED_OUTPUT[name] in out


def _rank_tagging():
    """The launcher's flag that tags each output line with its rank, and the root's tag."""
    if (MPIEXEC.parent / "ompi_info").exists():
        return ["--tag-output", "--oversubscribe"], "[1,0]<stdout>:"
    return ["-prepend-rank"], "[0] "


@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
@pytest.mark.parametrize("name", MPI_EXAMPLES)
def test_mpi_example_output_comes_from_the_root_only(name):
    """Lines printed by several ranks interleave in any order: the examples print on the root."""
    flags, root_tag = _rank_tagging()
    out = _check(_run([MPIEXEC, *flags, "-n", "2", sys.executable, EXAMPLES / name]))
    printed = [line for line in out.splitlines() if line.strip()]
    assert printed, "the example printed nothing"
    assert [line for line in printed if not line.startswith(root_tag)] == [], out


@pytest.mark.parametrize("name", sorted(ALSO_SERIAL))
def test_example_runs_as_one_plain_process(name):
    out = _check(_run([sys.executable, EXAMPLES / name]))
    assert "on 1 rank(s)" in out


@pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
def test_quickstart_is_reproducible_on_any_number_of_ranks():
    """The docs promise the same estimate, to the last printed digit, on 1 rank or many."""
    plain = _check(_run([sys.executable, EXAMPLES / "quickstart.py"]))
    parallel = _check(_run([MPIEXEC, "-n", "2", sys.executable, EXAMPLES / "quickstart.py"]))
    assert plain.replace("on 1 rank(s)", "") == parallel.replace("on 2 rank(s)", "")
    assert re.fullmatch(r"omega = 0\.\d{6} \(true value 0\.7\) \n", plain.replace("on 1 rank(s)", ""))


# ------------------------------------------------------------------ what the docs speak of
#: Words about how the software was made, or files a reader does not have.
NOT_ABOUT_THE_SOFTWARE = ["DESIGN.md", "shared/", "reference design", "closing note", "session"]


def test_docs_speak_of_the_software_only():
    texts = {path: path.read_text() for path in [*PAGES, *EXAMPLES.glob("*.py"), REPO / "README.md"]}
    for path, text in texts.items():
        for phrase in NOT_ABOUT_THE_SOFTWARE:
            assert phrase.lower() not in text.lower(), f"{path.name} mentions {phrase!r}"


def test_cluster_guide_hands_threaded_ranks_their_cores():
    cluster = (DOCS / "cluster.rst").read_text()
    assert "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in cluster and "22.05" in cluster
    for name in ("slurm_demo.sbatch", "slurm_run.sbatch"):
        assert "SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in (REPO / "scripts" / name).read_text()


def _qinfer_python():
    """A Python in which qinfer imports: this one, or the repository's .venv-qinfer (make test-qinfer)."""
    candidates = [Path(sys.executable), REPO / ".venv-qinfer" / "bin" / "python"]
    for python in candidates:
        mpiexec = python.parent / "mpiexec"
        if not (python.exists() and mpiexec.exists()):
            continue
        probe = subprocess.run([str(python), "-c", "import qinfer, mpi_qinfer"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            return python
    return None


@pytest.mark.parametrize("name", sorted(NEEDS_QINFER))
def test_qinfer_example_runs_on_two_ranks(name):
    python = _qinfer_python()
    if python is None:
        pytest.skip("qinfer does not import here, and there is no .venv-qinfer (make test-qinfer builds one)")
    out = _check(_run([python.parent / "mpiexec", "-n", "2", python, EXAMPLES / name]))
    assert "on 2 ranks" in out


@pytest.mark.parametrize("name", sorted(NEEDS_IPYPARALLEL_CLUSTER))
def test_ipyparallel_example_compiles(name):
    # It needs qinfer, ipyparallel and a running `ipcluster`: check that it is valid Python, no more.
    source = (EXAMPLES / name).read_text()
    compile(source, name, "exec")
    assert "DirectViewParallelizedModel" in source


@pytest.mark.parametrize("name", sorted(RUN_ALONE))
def test_example_that_starts_its_own_workers_runs(name, monkeypatch):
    if "ipyparallel" in name:
        pytest.importorskip("ipyparallel", reason="needs ipyparallel")
        monkeypatch.setenv("PATH", os.pathsep.join([str(MPIEXEC.parent), os.environ.get("PATH", "")]))
    if (MPIEXEC.parent / "ompi_info").exists():  # Open MPI starts nothing as root unless told to
        for variable in ("PRTE_ALLOW_RUN_AS_ROOT", "PRTE_ALLOW_RUN_AS_ROOT_CONFIRM", "OMPI_ALLOW_RUN_AS_ROOT",
                         "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"):
            monkeypatch.setenv(variable, "1")
    assert RUN_ALONE[name] in _check(_run([sys.executable, EXAMPLES / name]))


# ------------------------------------------------------------------ pages
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_doctests_in_page(page):
    result = doctest.testfile(str(page), module_relative=False, verbose=False, report=True,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_untested_python_blocks(page):
    # Python must come from docs/examples (literalinclude) or be a doctest; bash and text blocks are fine.
    text = page.read_text()
    found = re.findall(r"^\s*\.\. (?:code-block|code|sourcecode):: *(?:python|py|python3|ipython)\s*$", text,
                       flags=re.MULTILINE)
    assert not found, f"{page.name}: untested Python code block; use docs/examples/*.py or a doctest"


def test_literalincludes_point_at_existing_files_and_markers():
    pattern = re.compile(r"^\.\. literalinclude:: (\S+)((?:\n +:[\w-]+:.*)*)", flags=re.MULTILINE)
    for page in PAGES:
        for target, options in pattern.findall(page.read_text()):
            path = (DOCS / target).resolve()
            assert path.exists(), f"{page.name}: {target} does not exist"
            source = path.read_text()
            for marker in re.findall(r":(?:start-after|end-before): (.+)", options):
                assert marker.strip() in source, f"{page.name}: marker {marker!r} not in {target}"


def test_design_page_and_latest_figures():
    assert (DOCS / "design.rst").read_text().splitlines()[0].strip() == "Design"
    performance = (DOCS / "performance.rst").read_text()
    assert "Latest figures\n--------------" in performance
    assert "Figures are from one benchmark run" in performance
    assert "_static/bench-n2.png" in performance and (DOCS / "_static" / "bench-n2.png").exists()


def test_api_reference_lists_every_module_of_the_package():
    api = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (\S+)", api, flags=re.MULTILINE))
    package = REPO / "mpi_qinfer"
    # Every public module, in subpackages too (a subpackage is its __init__.py); private ones start with "_".
    modules = {".".join(path.relative_to(REPO).with_suffix("").parts[: -1 if path.stem == "__init__" else None])
               for path in package.rglob("*.py") if path.stem == "__init__" or not path.stem.startswith("_")}
    # The bench is a tool (docs/cli.rst, docs/performance.rst): none of its modules is API.
    tool = {module for module in modules
            if module == "mpi_qinfer.cli.bench" or module.startswith("mpi_qinfer.cli.bench.")}
    assert tool and documented & tool == set(), "docs/api.rst documents the bench's internals"
    assert "python -m mpi_qinfer bench`` is a measuring tool" in api
    assert modules - tool - documented == set(), "modules missing from docs/api.rst"
    assert documented - modules == set(), "docs/api.rst documents modules that do not exist"


# ------------------------------------------------------------------ the build
@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="sphinx is not installed (pip install .[docs])")
def test_sphinx_build_has_no_warnings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert done.returncode == 0, f"sphinx -W failed\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "html" / "index.html").exists()
