#!/usr/bin/env bash
# The MPI suite's core across emulated nodes (scripts/multinode_cluster.sh), then the nodes down.
#
#   scripts/multinode-tests.sh VENV [NODES]        (NODES default 3, at least 2)
#
# VENV's MPI decides the launcher: MPICH's hydra with a launch agent and a hostfile, or Open MPI's
# mpirun with plm_ssh_agent. Three steps, each under a timeout, each run from node n1:
#   1. parity, faults, simulate, the SMC updater through the proxy, the distributed updater and
#      the checkpoints, one rank per node (every message between ranks crosses the network);
#   2. the distributed updater and the node checks with one rank more than nodes (n1 holds two
#      ranks: shared memory and TCP in one job);
#   3. whole jobs launched across the nodes: dying workers, `run`, a worker killed mid-run and the run
#      resumed, a checkpoint re-sharded from 3 ranks to 2 and 4, the demo's estimate, `info`.
# Exits 0 with "SKIPPED" and the reason where namespaces cannot be made here.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${1:?usage: multinode-tests.sh VENV [NODES]}
nodes=${2:-3}
venv=$(cd "$venv" && pwd)
cluster=scripts/multinode_cluster.sh

dir=$(mktemp -d "${TMPDIR:-/tmp}/mpiq-nodes.XXXXXX")
trap '"$cluster" down "$dir"; rm -rf "$dir"' EXIT
status=0
"$cluster" up "$dir" "$nodes" || status=$?
if [ "$status" -eq 3 ]; then
    echo "multinode-tests.sh: SKIPPED: emulated nodes cannot be made here (the reason is above)"
    exit 0
fi
[ "$status" -eq 0 ] || exit "$status"

hosts=$(paste -sd, "$dir/hostfile")
if [ -x "$venv/bin/ompi_info" ]; then
    # --bind-to none: every node sees the same cores, and Open MPI would bind their ranks to the same ones.
    # Open MPI forwards no environment to other nodes unless named (-x), as over a real ssh.
    MPI_LAUNCHER_ARGS="--bind-to none --host $hosts --prtemca plm_ssh_agent $dir/agent"
    for name in PYTHONPATH PYTHONUNBUFFERED MPI_QINFER_TEST_NODES OMP_NUM_THREADS OPENBLAS_NUM_THREADS; do
        MPI_LAUNCHER_ARGS+=" -x $name"
    done
    export PRTE_ALLOW_RUN_AS_ROOT=1 PRTE_ALLOW_RUN_AS_ROOT_CONFIRM=1
else
    MPI_LAUNCHER_ARGS="-launcher ssh -launcher-exec $dir/agent -f $dir/hostfile"
fi
export MPI_LAUNCHER_ARGS MPI_QINFER_TEST_NODES=$nodes OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export MPI_TEST_TIMEOUT=${MPI_TEST_TIMEOUT:-300}
on_n1() { "$cluster" exec "$dir" n1 "$@"; }

failed=0
step() {  # step DESCRIPTION COMMAND...
    local what=$1 start rc
    shift
    echo "== multinode ($nodes nodes, $(basename "$venv")): $what"
    start=$(date +%s)
    on_n1 "$@"
    rc=$?
    echo "== $what: status $rc in $(( $(date +%s) - start )) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

# Parts of tests/spmd and tests/jobs (tests/README.md), with the node checks of tests/jobs/test_multinode.py.
core=(tests/spmd/test_parallel.py tests/spmd/test_faults.py tests/spmd/test_smc_mpi.py tests/spmd/test_distributed.py
      tests/spmd/test_checkpoint.py tests/spmd/test_resume.py tests/jobs/test_multinode.py)
step "MPI core, one rank per node" scripts/mpi-pytest.sh "$venv" "$nodes" "${core[@]}"
step "distributed updater and nodes, $((nodes + 1)) ranks" \
    scripts/mpi-pytest.sh "$venv" $((nodes + 1)) tests/spmd/test_distributed.py tests/jobs/test_multinode.py
step "jobs launched across the nodes" timeout -k 15 600 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/jobs/test_fault_jobs.py tests/jobs/test_run_command.py tests/jobs/test_lost_worker.py \
    tests/spmd/test_resume.py tests/jobs/test_multinode.py::test_info_shows_each_rank_on_its_node \
    tests/jobs/test_cli_jobs.py::test_demo_estimate_is_bitwise_the_same_on_any_number_of_ranks \
    tests/jobs/test_cli_jobs.py::test_info_under_mpiexec_lists_every_rank
exit $(( failed > 0 ))
