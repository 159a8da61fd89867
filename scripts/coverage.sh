#!/usr/bin/env bash
# Line coverage of mpi_qinfer by its tests: plain pytest, and the MPI tests under mpiexec.
#
#   scripts/coverage.sh VENV [serial|mpi|all]     (default: all)
#
# Every Python process the tests start is measured too (coverage's subprocess
# patch): the jobs that tests/jobs launches with mpiexec, their ranks, spawned
# workers. A process killed on purpose (SIGKILL in the lost-worker tests) leaves
# no data; a process of another venv (Open MPI, qinfer, the wheel checks) is
# measured only where coverage is installed in that venv too (make coverage
# installs it in the Open MPI venv when there is one). The data files go to
# the repository's .coverage.* whatever the process's directory; the report is
# by module, then the total.
set -euo pipefail
venv=${1:?usage: coverage.sh VENV [serial|mpi|all]}
what=${2:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
py="$venv/bin/python"
cd "$root"

rcfile=$(mktemp --suffix=.coveragerc)
trap 'rm -f "$rcfile"' EXIT
cat > "$rcfile" <<EOF
[run]
source_pkgs = mpi_qinfer
parallel = True
patch = subprocess
data_file = $root/.coverage
[report]
skip_empty = True
EOF

"$py" -m coverage erase --rcfile="$rcfile"
status=0
if [ "$what" = serial ] || [ "$what" = all ]; then
    echo "== coverage: pytest (every test that needs no launcher, and the jobs they start)"
    "$py" -m coverage run --rcfile="$rcfile" -m pytest -q -p no:cacheprovider || status=$?
fi
if [ "$what" = mpi ] || [ "$what" = all ]; then
    for n in 2 3; do
        echo "== coverage: mpiexec -n $n pytest --with-mpi -m mpi"
        COVERAGE_PROCESS_START="$rcfile" scripts/mpi-pytest.sh "$venv" "$n" || status=$?
    done
fi
"$py" -m coverage combine --rcfile="$rcfile" -q
"$py" -m coverage report --rcfile="$rcfile" --sort=cover
exit "$status"
