#!/usr/bin/env bash
# Build a virtual environment at one edge of what mpi_qinfer declares it supports:
#   oldest: the oldest Python of `requires-python`, every runtime and test dependency pinned to
#           its floor (">=X" -> "==X"), read from pyproject.toml so the pins cannot drift;
#   newest: the newest Python of the classifiers that this machine has, the newest releases.
# MPI: the mpich wheel.
#
# Usage: scripts/make_versions_venv.sh oldest|newest VENV_DIR
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
edge=${1:?usage: make_versions_venv.sh oldest|newest VENV_DIR}
venv_dir=${2:?usage: make_versions_venv.sh oldest|newest VENV_DIR}

# The dependency specifications of [project] and of the test extra, one per line.
mapfile -t specs < <(python3 - "$repo_root/pyproject.toml" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
deps = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
test = re.search(r"^test = \[(.*?)\]", text, re.M).group(1)
print("\n".join(re.findall(r'"([^"]+)"', deps + test)))
PYEOF
)
case "$edge" in
    oldest)
        wanted=$(sed -n 's/^requires-python = ">=\([0-9.]*\)"/\1/p' "$repo_root/pyproject.toml")
        pins=("${specs[@]/>=/==}")
        ;;
    newest)
        wanted=$(sed -n 's/.*"Programming Language :: Python :: \(3\.[0-9]*\)".*/\1/p' "$repo_root/pyproject.toml" \
                 | sort -t. -k2 -n -r | tr '\n' ' ')
        pins=("${specs[@]%%>=*}")
        ;;
    *) echo "make_versions_venv.sh: oldest or newest, not $edge" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086  # $wanted is a list of versions, newest first
python=$("$repo_root/scripts/find-python.sh" $wanted)
echo "$edge: $("$python" --version) ($python), ${pins[*]}"
"$python" -m venv "$venv_dir"
pip=("$venv_dir/bin/python" -m pip install --disable-pip-version-check --quiet)
"${pip[@]}" --upgrade pip
"${pip[@]}" --upgrade "${pins[@]}" mpich
"${pip[@]}" --no-deps -e "$repo_root"
"$venv_dir/bin/python" -c "import sys, numpy, mpi4py.MPI, pytest; print('$edge venv ready: Python', sys.version.split()[0], 'numpy', numpy.__version__, 'mpi4py', mpi4py.__version__, 'pytest', pytest.__version__)"
