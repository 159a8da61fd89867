#!/usr/bin/env bash
# Build a virtual environment in which the real qinfer 1.0 imports, next to mpi_qinfer.
#
# qinfer 1.0 (the last release on PyPI, 2017) needs an old NumPy/SciPy:
#   * numpy==1.23.5: qinfer.domains returns np.int / np.float, aliases removed in NumPy
#                    1.24, so every domain(...).dtype and simulate_experiment fails on newer.
#   * scipy<1.11:    pinned with the numpy of that time (1.10.1 resolves); qinfer's
#                    ``from scipy.integrate import cumtrapz`` fails from SciPy 1.14 on.
#   * future:        qinfer's only other runtime dependency (future.utils.with_metaclass).
# Python 3.10 or 3.11: numpy 1.23.5 has no wheels for newer (found by scripts/find-python.sh).
# Not installed: QuTiP, which qinfer.tomography's priors (GinibreDistribution, ...) need.
# mpi_qinfer itself is installed with --no-deps, so that pip keeps the pins above, and its
# other runtime dependencies (mpi4py, tqdm) are installed explicitly.
#
# Usage: scripts/make_qinfer_venv.sh [VENV_DIR]      (default: .venv-qinfer in the repo root)
# Then:  VENV_DIR/bin/python -m pytest -m qinfer tests/with_qinfer/test_qinfer_interop.py
#        timeout 300 VENV_DIR/bin/mpiexec -n 2 VENV_DIR/bin/python -m mpi4py -m pytest \
#            --with-mpi tests/with_qinfer/test_qinfer_interop.py
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-$repo_root/.venv-qinfer}"
# numpy 1.23.5 has wheels for Python 3.8-3.11 only: take 3.11 or 3.10 (of those the package
# supports), whichever this machine has, even where the default python3 is newer.
python=$("$repo_root/scripts/find-python.sh" 3.11 3.10) || {
    echo "make_qinfer_venv.sh: qinfer 1.0 needs numpy 1.23.5, which needs Python 3.10 or 3.11;" \
         "install one (or set PYTHON=/path/to/python3.11)" >&2
    exit 1
}
echo "qinfer venv on $("$python" --version) ($python)"

"$python" -m venv "$venv_dir"
pip=("$venv_dir/bin/python" -m pip install --disable-pip-version-check --quiet)

"${pip[@]}" --upgrade pip
# The pins that make qinfer 1.0 import (see the comment at the top).
"${pip[@]}" "numpy==1.23.5" "scipy>=1.10,<1.11" "future>=0.18" "qinfer==1.0"
# MPI from the mpich wheel, mpi4py built against nothing (it finds libmpi at run time).
"${pip[@]}" mpich "mpi4py>=4.1" "tqdm>=4.60" "pytest>=7" "pytest-mpi>=0.6"
# mpi_qinfer itself, editable, without letting pip upgrade numpy past qinfer's pin.
"${pip[@]}" --no-deps -e "$repo_root"

"$venv_dir/bin/python" - <<'EOF'
import numpy, scipy, qinfer, mpi4py, mpi_qinfer
print(f"numpy {numpy.__version__}, scipy {scipy.__version__}, qinfer {qinfer.__version__}, "
      f"mpi4py {mpi4py.__version__}, mpi_qinfer {mpi_qinfer.__version__}")
EOF
echo "qinfer venv ready: $venv_dir"
