#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it in fresh virtual
# environments (never an editable install) and use it from outside the source tree.
#
#   1. build the wheel with exactly the minimum setuptools that pyproject.toml declares;
#   2. check that the wheel carries LICENSE, py.typed and the project metadata;
#   3. install it with the mpich extra and run the demo on 2 ranks;
#   4. install it without the mpich extra, in a Python with no MPI library:
#      import, serial model + SMC and `mpi-qinfer --help` work, and
#      `mpi-qinfer info` prints one line saying how to get MPI and exits 1.
#
# Usage: scripts/check-wheel.sh [WORKDIR]    (default .venv-wheel-check, rebuilt each time)
# Environment: PYTHON (default python3), NP (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE=$PWD
PYTHON=${PYTHON:-python3}
NP=${NP:-2}
WORK=$(realpath -m "${1:-.venv-wheel-check}")
PIP_QUIET=(-q --disable-pip-version-check)

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'check-wheel: FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/run"

# ------------------------------------------------------------------ 1. build
MIN_SETUPTOOLS=$(sed -n 's/^requires = \["setuptools>=\([0-9.]*\)"\]/\1/p' pyproject.toml)
[ -n "$MIN_SETUPTOOLS" ] || fail "no 'requires = [\"setuptools>=X\"]' line in pyproject.toml"
step "building the wheel with setuptools==$MIN_SETUPTOOLS (the declared minimum), no build isolation"
# From a copy of the tracked files, so that no stale build/ or egg-info can leak into the wheel.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z -co --exclude-standard | tar --null -cf - -T - | tar -xf - -C "$WORK/src"
else
    tar --exclude='./.venv*' --exclude=./build --exclude=./dist -cf - . | tar -xf - -C "$WORK/src"
fi
"$PYTHON" -m venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install "${PIP_QUIET[@]}" "setuptools==$MIN_SETUPTOOLS"
(cd "$WORK/src" && "$WORK/build-env/bin/python" -m pip wheel "${PIP_QUIET[@]}" --no-build-isolation --no-deps \
    . -w "$WORK/dist")
WHEEL=$(ls "$WORK"/dist/mpi_qinfer-*.whl)
echo "built $(basename "$WHEEL")"

# ------------------------------------------------------------------ 2. contents
step "checking the wheel's contents"
"$WORK/build-env/bin/python" - "$WHEEL" <<'PY'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
def need(condition, what):
    if not condition:
        sys.exit(f"check-wheel: FAILED: the wheel has no {what}")
license_files = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
need(license_files, "LICENSE under .dist-info/licenses/")
need("mpi_qinfer/py.typed" in names, "mpi_qinfer/py.typed")
need("mpi_qinfer/cli/bench/__init__.py" in names, "mpi_qinfer.cli.bench subpackage")
need(not any(n.startswith(("tests/", "docs/", "scripts/")) for n in names), "absence of tests/docs/scripts")
with zipfile.ZipFile(sys.argv[1]) as wheel:
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    license_text = wheel.read(license_files[0]).decode()
for field in ("License-Expression: BSD-3-Clause", "Project-URL: ", "Classifier: Typing :: Typed",
              "Provides-Extra: mpich", "Requires-Python: >=3.10"):
    need(field in metadata, f"'{field}' in METADATA")
need("BSD 3-Clause" in license_text and "The mpi_qinfer developers" in license_text, "BSD-3-Clause LICENSE text")
print(f"{len(names)} files; LICENSE, py.typed and metadata present")
PY

# ------------------------------------------------------------------ 3. with MPI
step "installing the wheel with the mpich extra in a fresh venv, running the demo on $NP ranks"
"$PYTHON" -m venv "$WORK/mpich"
"$WORK/mpich/bin/python" -m pip install "${PIP_QUIET[@]}" "$WHEEL[mpich]"
cd "$WORK/run"   # not the source tree: only the installed package can be imported
INSTALLED=$("$WORK/mpich/bin/python" -c 'import mpi_qinfer; print(mpi_qinfer.__file__)')
case "$INSTALLED" in "$SOURCE"/mpi_qinfer/*) fail "imported the source tree ($INSTALLED), not the wheel";; esac
echo "mpi_qinfer imported from $INSTALLED"
timeout -k 10 600 "$WORK/mpich/bin/mpiexec" -n "$NP" "$WORK/mpich/bin/python" -m mpi_qinfer demo \
    --particles 1000 --experiments 30 --seed 3 > demo.out 2> demo.err || {
    cat demo.out demo.err; fail "the demo from the wheel exited with $?"; }
cat demo.out
grep -q "on $NP MPI rank(s)" demo.out || fail "the demo did not run on $NP ranks"
grep -q "same estimate as the serial run, bitwise: yes" demo.out || fail "parallel and serial estimates differ"
grep -q "speed-up" demo.out || fail "the demo reported no speed-up"
if grep -q $'\r' demo.err; then fail "the demo wrote carriage returns into a log file"; fi

# ------------------------------------------------------------------ 4. without MPI
step "installing the wheel without the mpich extra in a fresh venv (no MPI library)"
"$PYTHON" -m venv "$WORK/nompi"
NOMPI="$WORK/nompi/bin"
"$NOMPI/python" -m pip install "${PIP_QUIET[@]}" "$WHEEL"
if "$NOMPI/python" -c 'from mpi4py import MPI' >/dev/null 2>&1; then
    echo "SKIPPED the no-MPI checks: mpi4py finds an MPI library on this machine outside the venv"
    exit 0
fi
"$NOMPI/python" - <<'PY'
import sys

import numpy as np

import mpi_qinfer
from mpi_qinfer import ExpSparseHeuristic, SMCUpdater, UniformDistribution
from mpi_qinfer.cli import main as cli
from mpi_qinfer.models.builtin import SimplePrecessionModel

simulator = SimplePrecessionModel()
simulator.rng = np.random.default_rng(1)
updater = SMCUpdater(SimplePrecessionModel(), 2000, UniformDistribution([0, 1]), rng=2)
heuristic = ExpSparseHeuristic(updater)
for _ in range(40):
    expparams = heuristic()
    updater.update(simulator.simulate_experiment(np.array([[0.7]]), expparams), expparams)
estimate = float(updater.est_mean()[0])
sigma = float(np.sqrt(updater.est_covariance_mtx()[0, 0]))
# A smoke test of the installed layer: the truth within 5 posterior widths (every one of 200 seeds was).
assert abs(estimate - 0.7) < 5 * sigma, (estimate, sigma)
cli.build_parser(command="demo")
assert "mpi4py.MPI" not in sys.modules, "importing mpi_qinfer and its CLI initialised MPI"
try:
    mpi_qinfer.MPIParallelizedModel
except mpi_qinfer.MPIUnavailableError as error:
    assert "mpi_qinfer[mpich]" in str(error), error
else:
    raise AssertionError("the proxy was importable without an MPI library")
print(f"serial SMC without MPI: omega = {estimate:.4f} (true 0.7); the proxy says how to get MPI")
PY
"$NOMPI/mpi-qinfer" --help > help.out || fail "mpi-qinfer --help exited with $?"
grep -q "demo" help.out || fail "mpi-qinfer --help lists no demo"
echo "mpi-qinfer --help: $(wc -l < help.out) lines, exit 0"
status=0
"$NOMPI/mpi-qinfer" info > info.out 2> info.err || status=$?
cat info.err
[ "$status" -ne 0 ] || fail "mpi-qinfer info exited 0 without an MPI library"
[ "$(wc -l < info.err)" -eq 1 ] || fail "mpi-qinfer info printed $(wc -l < info.err) lines instead of one"
[ ! -s info.out ] || fail "mpi-qinfer info printed to stdout without an MPI library"
grep -q "mpi_qinfer\[mpich\]" info.err || fail "mpi-qinfer info does not say to install the mpich extra"
echo "mpi-qinfer info: one line, exit $status"
step "check-wheel: all checks passed"
