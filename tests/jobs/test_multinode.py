"""Checks that mean something only across several nodes: run by ``make test-multinode``.

``scripts/multinode-tests.sh`` brings up emulated nodes (``scripts/multinode_cluster.sh``), runs
pytest on the first of them with ``MPI_QINFER_TEST_NODES`` set to the node count and the
launcher's host and agent options in ``MPI_LAUNCHER_ARGS``; elsewhere these tests skip (their
single-node halves are in test_cli.py and test_layout.py).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_collectively, mpiexec_command, verdict_of

from mpi_qinfer.cli import info

N_NODES = int(os.environ.get("MPI_QINFER_TEST_NODES", "0"))
across_nodes = pytest.mark.skipif(N_NODES < 2, reason="needs emulated nodes: `make test-multinode`")
TIMEOUT = 90


def _rows_of_info(stdout):
    return re.findall(r"^\s*(\d+)\s+(\S+)\s+\d+\s+[\d,-]+\s+\S.*$", stdout, re.M)


@across_nodes
def test_info_shows_each_rank_on_its_node():
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() > 1:
        pytest.skip("starts its own job")
    n_ranks = N_NODES + 1  # one node gets two ranks: a mixed layout
    argv, env = mpiexec_command(n_ranks, timeout=TIMEOUT - 10)
    done = subprocess.run([*argv, sys.executable, "-m", "mpi_qinfer", "info"], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)
    assert done.returncode == 0, done.stderr
    rows = _rows_of_info(done.stdout)
    assert [int(rank) for rank, _ in rows] == list(range(n_ranks)), done.stdout
    hosts = {host for _, host in rows}
    assert hosts == {f"n{i}" for i in range(1, N_NODES + 1)}, done.stdout
    line = re.search(r"^nodes\s+(\d+): (.*)$", done.stdout, re.M)
    assert line is not None and int(line.group(1)) == N_NODES, done.stdout
    for host in hosts:  # every host's ranks as the table gives them
        ranks = [int(rank) for rank, where in rows if where == host]
        assert f"{host} (rank{'s' if len(ranks) > 1 else ''} {info.cpu_list(ranks)})" in line.group(2)
    assert "shared-memory node" not in done.stdout, done.stdout  # MPI's nodes are the hosts


@across_nodes
@pytest.mark.mpi(min_size=2)
def test_mpis_shared_memory_nodes_are_the_hosts(comm):
    """What the idle modes and the node report rest on: Comm_split_type groups by node, not by job."""
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        names = node.allgather(socket.gethostname())
        node_size = node.Get_size()
    finally:
        node.Free()
    rows = comm.gather((socket.gethostname(), names, node_size), root=0)
    verdict = None
    if comm.Get_rank() == 0:
        def check():
            hosts = [host for host, _, _ in rows]
            assert len(set(hosts)) == min(N_NODES, comm.Get_size()), hosts
            for host, names, size in rows:  # a node's ranks: those of its host, and all of them
                assert set(names) == {host} and size == hosts.count(host), rows
        verdict = verdict_of(check)
    assert_collectively(comm, verdict)


# ------------------------------------------------------------- the emulated cluster itself
CLUSTER = Path(__file__).resolve().parents[2] / "scripts" / "multinode_cluster.sh"


def _cluster(*args, timeout=60, **kwargs):
    return subprocess.run(["bash", str(CLUSTER), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.fixture
def two_nodes(tmp_path):
    """Nodes n1 and n2 under tmp_path, taken down afterwards; a skip where namespaces cannot be made."""
    before = _own_addresses()
    up = _cluster("up", tmp_path / "c", 2)
    if up.returncode == 3:
        pytest.skip(up.stderr.strip())
    try:
        assert up.returncode == 0, up.stderr
        assert _own_addresses() == before  # nothing changed in this process's own network
        yield tmp_path / "c"
    finally:
        _cluster("down", tmp_path / "c")


def _own_addresses():
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=30).stdout


def _holders(directory):
    return [int(path.read_text()) for path in directory.glob("*/holder.pid")]


def test_emulated_nodes_have_their_own_name_network_boot_id_and_shm(two_nodes):
    seen = {}
    for node in ("n1", "n2"):
        done = _cluster("exec", two_nodes, node, "sh", "-c",
                        "hostname; cat /proc/sys/kernel/random/boot_id; ls /dev/shm | wc -l; pwd; echo $MARK",
                        env=dict(os.environ, MARK="kept"), cwd=two_nodes)
        assert done.returncode == 0, done.stderr
        name, boot_id, shm_files, cwd, mark = done.stdout.split()
        assert name == node and shm_files == "0" and cwd == str(two_nodes) and mark == "kept"
        seen[node] = boot_id
    assert seen["n1"] != seen["n2"]
    assert open("/proc/sys/kernel/random/boot_id").read().strip() not in seen.values()
    # n1 reaches n2 by name over the private subnet: a closed port answers "refused", not a timeout.
    done = _cluster("exec", two_nodes, "n1", "bash", "-c", "exec 3<>/dev/tcp/n2/9")
    assert "refused" in done.stderr, done.stderr


def test_the_agent_behaves_like_ssh(two_nodes):
    """Options skipped, the words joined into one shell command, run in HOME with a login-like environment."""
    done = subprocess.run([str(two_nodes / "agent"), "-x", "-o", "BatchMode=yes", "n2", "echo", "$(hostname)",
                           "${MARK:-unset}", "&&", "pwd"], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, MARK="leaked"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["n2", "unset", os.path.expanduser("~")]
    bad = subprocess.run([str(two_nodes / "agent"), "n9", "true"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "no node n9" in bad.stderr


def test_down_ends_every_process_on_the_nodes_by_pid(two_nodes):
    holders = _holders(two_nodes)
    assert len(holders) == 3  # the bridge and two nodes
    started = subprocess.Popen(["bash", str(CLUSTER), "exec", str(two_nodes), "n2", "sleep", "300"])
    try:
        for _ in range(100):  # until the sleep runs inside n2
            if _cluster("exec", two_nodes, "n2", "pgrep", "-x", "sleep").stdout.strip():
                break
        done = _cluster("down", two_nodes)
        assert done.returncode == 0, done.stderr
        assert started.wait(timeout=30) != 0  # ended by the signal, not by finishing
    finally:
        started.kill()
    for pid in holders:
        assert not Path(f"/proc/{pid}").exists() or "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert _cluster("exec", two_nodes, "n1", "true").returncode != 0


def test_up_exits_3_with_the_reason_where_nodes_cannot_be_made(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "readlink", "mkdir", "cat", "seq", "sleep"):  # no unshare, nsenter, ip
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = subprocess.run([str(bin_dir / "bash"), str(CLUSTER), "up", str(tmp_path / "c"), "2"],
                          capture_output=True, text=True, timeout=30, env={"PATH": str(bin_dir)})
    assert done.returncode == 3, done.stderr
    assert "cannot emulate nodes here" in done.stderr
    assert _cluster("up", tmp_path / "c", "1").returncode == 1  # one node is no cluster
