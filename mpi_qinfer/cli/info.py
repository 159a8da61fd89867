"""The ``info`` sub-command: which MPI and Python stack this is, and where and how every rank runs.

Run under the launcher of the real job, it answers the questions of a first
cluster run: is mpi4py using the MPI the launcher speaks (or is every
process a singleton, see :func:`~mpi_qinfer.runtime.launcher.check_launcher`), on
which host and CPUs each rank runs, how many BLAS/OpenMP threads each rank
will start, and how idle workers will wait. Without an MPI library it prints
one line saying how to get one and exits with status 1.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ..runtime.launcher import library_line, print_on_rank_0, warn_if_misslaunched
from ..runtime.mpi_library import load_mpi

__all__ = ["THREAD_VARIABLES", "add_arguments", "cpu_list", "describe", "idle_report", "main", "node_layout",
           "oversubscription_notes", "rank_row", "rank_table", "shared_memory_leaders", "thread_report"]

#: Environment variables that set the thread count of OpenMP, OpenBLAS, MKL and BLIS, in that order.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def cpu_list(cpus) -> str:
    """CPU numbers as compact ranges, e.g. ``{0, 1, 2, 5}`` -> ``"0-2,5"``.

    Parameters
    ----------
    cpus : iterable of int

    Returns
    -------
    str
    """
    ranges, run = [], []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            ranges.append(run)
        run = [cpu]
    if run:
        ranges.append(run)
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in ranges) or "?"


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows have no affinity mask
        return set(range(os.cpu_count() or 1))


def thread_report(environ=None) -> tuple[int, str]:
    """How many BLAS/OpenMP threads this process's numerical libraries will use.

    With threadpoolctl installed, the thread pools actually loaded (numpy's
    BLAS, any OpenMP runtime) are asked; otherwise the environment variables
    of :data:`THREAD_VARIABLES` are read, and when none is set the libraries'
    default, one thread per usable CPU, is assumed.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ`` (used only without threadpoolctl).

    Returns
    -------
    tuple of (int, str)
        The largest thread count, and a description such as
        ``"blas=1 (openblas)"``, ``"OMP_NUM_THREADS=1"`` or ``"4 (default: one per CPU)"``.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = threadpool_info()
        if pools:
            text = ", ".join(f"{pool['user_api']}={pool['num_threads']} ({pool['internal_api']})" for pool in pools)
            return max(int(pool["num_threads"]) for pool in pools), text
    environ = os.environ if environ is None else environ
    settings = [(name, environ[name]) for name in THREAD_VARIABLES if environ.get(name)]
    if settings:
        counts = [int(value) for _, value in settings if value.strip().isdigit()]
        return max(counts, default=1), ", ".join(f"{name}={value}" for name, value in settings)
    cpus = len(_affinity())
    return cpus, f"{cpus} (default: one per CPU)"


def rank_row(rank: int) -> tuple:
    """This process's row of the rank table.

    Parameters
    ----------
    rank : int

    Returns
    -------
    tuple
        ``(rank, host, pid, cpus, threads, cpu_set, thread_count)``: ``cpus``
        and ``threads`` as printed, ``cpu_set`` the usable CPUs, and
        ``thread_count`` the largest thread pool.
    """
    MPI = load_mpi()
    cpu_set = _affinity()
    thread_count, threads = thread_report()
    return rank, MPI.Get_processor_name(), os.getpid(), cpu_list(cpu_set), threads, cpu_set, thread_count


def oversubscription_notes(rows) -> list[str]:
    """Warnings for hosts whose ranks may start more threads than they have CPUs.

    Parameters
    ----------
    rows : list of tuple
        From :func:`rank_table`.

    Returns
    -------
    list of str
        One line per oversubscribed host; empty when every thread has a CPU.
    """
    notes = []
    for host in dict.fromkeys(row[1] for row in rows):
        ranks = [row for row in rows if row[1] == host]
        cpus = set().union(*(row[5] for row in ranks))
        threads = sum(row[6] for row in ranks)
        if threads > len(cpus):
            notes.append(f"note: the {len(ranks)} rank(s) on {host} may run {threads} BLAS/OpenMP threads on "
                         f"{len(cpus)} CPU(s); with one rank per core, export OMP_NUM_THREADS=1 "
                         "OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 before starting Python")
    return notes


def rank_table(comm=None) -> list[tuple] | None:
    """:func:`rank_row` of every rank, gathered to rank 0 (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm, optional
        Default ``MPI.COMM_WORLD``.

    Returns
    -------
    list of tuple or None
        On rank 0 one row per rank, in rank order; None elsewhere.
    """
    comm = load_mpi().COMM_WORLD if comm is None else comm
    return comm.gather(rank_row(comm.Get_rank()), root=0)


def shared_memory_leaders(comm) -> list[int] | None:
    """For every rank, the lowest rank it shares memory with, as MPI sees it (collective).

    This is the grouping that ``Comm_split_type(COMM_TYPE_SHARED)`` gives, which
    the idle modes use to count a node's ranks; it can differ from the host
    names (a container or a virtual node that MPI takes for the same machine).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm

    Returns
    -------
    list of int or None
        On rank 0 one entry per rank, in rank order; None elsewhere.
    """
    MPI = load_mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        leader = node.allreduce(comm.Get_rank(), op=MPI.MIN)
    finally:
        node.Free()
    return comm.gather(leader, root=0)


def node_layout(rows, leaders=None) -> tuple[str, list[str]]:
    """The ranks of each host, and a note where MPI's shared-memory nodes disagree with the hosts.

    Parameters
    ----------
    rows : list of tuple
        From :func:`rank_table`.
    leaders : list of int, optional
        From :func:`shared_memory_leaders`; without it no comparison is made.

    Returns
    -------
    tuple of (str, list of str)
        ``"2: n1 (ranks 0,2), n2 (rank 1)"``, and the notes (empty when MPI's
        grouping is the hosts').
    """
    hosts: dict[str, list[int]] = {}
    for row in rows:
        hosts.setdefault(row[1], []).append(row[0])

    def ranks_text(ranks):
        return f"rank{'s' if len(ranks) > 1 else ''} {cpu_list(ranks)}"

    text = f"{len(hosts)}: " + ", ".join(f"{host} ({ranks_text(ranks)})" for host, ranks in hosts.items())
    if leaders is None:
        return text, []
    groups: dict[int, list[int]] = {}
    for row, leader in zip(rows, leaders):
        groups.setdefault(leader, []).append(row[0])
    if sorted(groups.values()) == sorted(hosts.values()):
        return text, []
    shared = ", ".join(f"[{cpu_list(ranks)}]" for ranks in groups.values())
    return text, [f"note: MPI groups the ranks into {len(groups)} shared-memory node(s), {shared}, not by host "
                  "name; the idle mode and MPI's shared-memory transport follow MPI's grouping"]


def idle_report(comm) -> str:
    """How idle workers will wait: the requested mode and what ``auto`` resolves to here (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm

    Returns
    -------
    str
    """
    from ..engine import idle

    requested = os.environ.get(idle.ENV_IDLE) or "auto"
    source = f"{idle.ENV_IDLE}={requested}" if os.environ.get(idle.ENV_IDLE) else "default auto"
    oversubscribed = idle.node_is_oversubscribed(comm)
    try:
        mode = idle.resolve_idle_mode(None, oversubscribed)
    except ValueError as error:
        return f"invalid ({error})"
    why = "more ranks than usable cores on a node" if oversubscribed else "a core per rank"
    return f"{mode} ({source}; {why})"


def describe() -> list[tuple[str, str]]:
    """``(label, value)`` lines about this package, the MPI library and the Python stack.

    Returns
    -------
    list of tuple of str
    """
    import mpi4py

    from .._version import __version__

    MPI = load_mpi()
    standard = "{}.{}".format(*MPI.Get_version())
    config = mpi4py.get_config()
    return [
        ("mpi_qinfer", f"{__version__} in {os.path.dirname(os.path.abspath(__file__))}"),
        ("MPI library", library_line()),
        ("MPI standard", f"{standard} (mpi4py built for {MPI.VERSION}.{MPI.SUBVERSION})"),
        ("mpi4py", f"{mpi4py.__version__} in {os.path.dirname(mpi4py.__file__)}"),
        ("mpi4py config", ", ".join(f"{k}={v}" for k, v in config.items()) or "(defaults)"),
        ("numpy", np.__version__),
        ("python", sys.version.split()[0] + f" ({sys.executable})"),
    ]


def add_arguments(parser) -> None:
    """Add ``info``'s options (none) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.epilog = "Run it under the launcher you mean to use: `mpiexec -n 4 python -m mpi_qinfer info`."


def main(args=None) -> int:
    """Print the report on rank 0 of ``MPI.COMM_WORLD`` (collective).

    Parameters
    ----------
    args : argparse.Namespace, optional
        Unused.

    Returns
    -------
    int
        0; 1 (after one line on stderr) when no MPI library can be loaded.
    """
    from ..errors import MPIUnavailableError

    try:
        MPI = load_mpi()
    except MPIUnavailableError as error:
        print_on_rank_0(f"{error}\n")
        return 1
    comm = MPI.COMM_WORLD
    warn_if_misslaunched(comm)
    idle_line = idle_report(comm)
    leaders = shared_memory_leaders(comm)
    rows = rank_table(comm)
    if rows is None:
        return 0
    nodes_line, node_notes = node_layout(rows, leaders)
    lines = [*describe(), ("ranks", str(comm.Get_size())), ("nodes", nodes_line), ("idle workers", idle_line)]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    print()
    host_width = max(4, *(len(row[1]) for row in rows))
    cpus_width = max(4, *(len(row[3]) for row in rows))
    print(f"{'rank':>4}  {'host':<{host_width}}  {'pid':>7}  {'cpus':<{cpus_width}}  threads")
    for rank, host, pid, cpus, threads, *_ in rows:
        print(f"{rank:>4}  {host:<{host_width}}  {pid:>7}  {cpus:<{cpus_width}}  {threads}")
    notes = node_notes + oversubscription_notes(rows)
    if notes:
        print()
        print("\n".join(notes))
    return 0
