#!/usr/bin/env bash
# Build a virtual environment with the oldest versions mpi_qinfer declares: the oldest Python of
# `requires-python` and every runtime and test dependency pinned to its floor (">=X" -> "==X"), read
# from pyproject.toml so the pins cannot drift from what the package promises. MPI: the mpich wheel.
#
# Usage: scripts/make_oldest_venv.sh [VENV_DIR]      (default: .venv-oldest in the repo root)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-$repo_root/.venv-oldest}"

oldest_python=$(sed -n 's/^requires-python = ">=\([0-9.]*\)"/\1/p' "$repo_root/pyproject.toml")
python=$("$repo_root/scripts/find-python.sh" "$oldest_python")
# The floors of [project] dependencies and of the test extra, as exact pins.
mapfile -t pins < <(python3 - "$repo_root/pyproject.toml" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
deps = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
test = re.search(r"^test = \[(.*?)\]", text, re.M).group(1)
for spec in re.findall(r'"([^"]+)"', deps + test):
    print(spec.replace(">=", "=="))
PYEOF
)
echo "oldest: Python $oldest_python ($python), ${pins[*]}"
"$python" -m venv "$venv_dir"
pip=("$venv_dir/bin/python" -m pip install --disable-pip-version-check --quiet)
"${pip[@]}" --upgrade pip
"${pip[@]}" "${pins[@]}" mpich
"${pip[@]}" --no-deps -e "$repo_root"
"$venv_dir/bin/python" -c "import sys, numpy, mpi4py.MPI, pytest; print('oldest venv ready: Python', sys.version.split()[0], 'numpy', numpy.__version__, 'mpi4py', mpi4py.__version__, 'pytest', pytest.__version__)"
