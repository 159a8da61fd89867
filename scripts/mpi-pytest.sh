#!/usr/bin/env bash
# Run the MPI-marked tests under mpiexec with N ranks, inside a hard timeout.
#
#   scripts/mpi-pytest.sh VENV N [pytest args...]
#
# -m mpi4py makes a rank that dies with an exception abort the whole job
# instead of leaving the others blocked in a collective; `timeout` kills a
# job that hangs anyway, so a deadlock fails in minutes, never hours.
set -euo pipefail
venv=${1:?usage: mpi-pytest.sh VENV N [pytest args]}
n=${2:?usage: mpi-pytest.sh VENV N [pytest args]}
shift 2
limit=${MPI_TEST_TIMEOUT:-600}

launcher=("$venv/bin/mpiexec" -n "$n")
# MPI_LAUNCHER_ARGS: more launcher options, split at spaces (e.g. hosts and a launch agent for
# the emulated nodes of scripts/multinode_cluster.sh).
read -r -a extra <<< "${MPI_LAUNCHER_ARGS:-}"
launcher+=("${extra[@]}")
if [ -x "$venv/bin/ompi_info" ]; then
    # Open MPI refuses root and more ranks than cores unless told otherwise.
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    launcher+=(--oversubscribe)
else
    export MPIEXEC_TIMEOUT=$limit
fi
echo "== $(basename "$venv"): mpiexec -n $n ${MPI_LAUNCHER_ARGS:+$MPI_LAUNCHER_ARGS }pytest --with-mpi -m mpi $*"
exec timeout -k 15 "$limit" "${launcher[@]}" "$venv/bin/python" -m mpi4py -m pytest \
    --with-mpi -m mpi -q -p no:cacheprovider "$@"
