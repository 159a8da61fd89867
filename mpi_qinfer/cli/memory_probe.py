"""What a demo problem needs of the memory, and whether this machine has it, checked before any allocation.

:func:`check_size` refuses a problem that cannot fit, naming the ``demo``
option (``--qubits`` or ``--particles``) to change; every rank reaches the
same verdict on its own, with no communication.
"""

from __future__ import annotations

import os

from ..models.builtin import IsingChainModel

__all__ = ["check_size", "format_bytes", "memory_estimate", "physical_memory"]

#: Bytes the SMC loop keeps per particle and model parameter (locations, resampler copies, ...) and per particle.
_BYTES_PER_PARTICLE_PARAMETER = 32
_BYTES_PER_PARTICLE = 64


def memory_estimate(model: str, particles: int, qubits: int = 3) -> int:
    """A generous estimate of the bytes one rank needs for the demo problem.

    The Ising chain keeps two dense ``2**qubits`` square matrices and
    diagonalises a block of up to :attr:`~mpi_qinfer.models.builtin.IsingChainModel.block_size`
    Hamiltonians at a time (the matrices, the eigenvectors and LAPACK's
    workspace); the SMC loop keeps a few arrays per particle.

    Parameters
    ----------
    model : {"precession", "ising"}
    particles : int
    qubits : int
        Ising chain length (ignored for ``precession``).

    Returns
    -------
    int
    """
    smc = _smc_bytes(model, particles)
    if model != "ising":
        return smc
    matrix = 8 * 4**qubits  # one dense float64 2**q x 2**q matrix
    rows = min(IsingChainModel.block_size, particles)
    return smc + matrix * (2 + 3 * rows)


def _smc_bytes(model: str, particles: int) -> int:
    n_params = {"precession": 1, "ising": 2}[model]
    return particles * (_BYTES_PER_PARTICLE + _BYTES_PER_PARTICLE_PARAMETER * n_params)


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the OS does not say.

    Returns
    -------
    int or None
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def format_bytes(n_bytes: float) -> str:
    """``1536`` -> ``"1.5 KiB"``.

    Parameters
    ----------
    n_bytes : float

    Returns
    -------
    str
    """
    if n_bytes >= 1024**6:  # beyond PiB, possibly beyond a float's range (--qubits 1000)
        return f"2**{int(n_bytes).bit_length() - 1} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.3g} PiB"


def check_size(model: str, particles: int, qubits: int = 3, memory: int | None = None) -> None:
    """Refuse a demo problem that would exhaust the memory, before anything is allocated.

    Every rank reaches the same verdict on its own, so the check needs no
    communication. The limit is half the machine's memory, since several
    ranks usually share a node.

    Parameters
    ----------
    model : {"precession", "ising"}
    particles : int
    qubits : int
    memory : int, optional
        The machine's memory in bytes; default :func:`physical_memory`
        (no check where that is unknown).

    Raises
    ------
    ValueError
        Naming ``--qubits`` or ``--particles``, the memory needed and what fits.
    """
    memory = physical_memory() if memory is None else memory
    if memory is None:
        return
    limit = memory // 2
    needed = memory_estimate(model, particles, qubits)
    if needed <= limit:
        return
    available = f"more than half of this machine's {format_bytes(memory)} of memory"
    smc_bytes = _smc_bytes(model, particles)
    if needed - smc_bytes > smc_bytes:  # the Ising matrices dominate
        largest = 0  # the estimate grows with the qubits: count up while it fits
        while largest + 1 < qubits and memory_estimate(model, particles, largest + 1) <= limit:
            largest += 1
        fits = f"; the largest that fits is --qubits {largest}" if largest else ""
        raise ValueError(f"--qubits {qubits} needs about {format_bytes(needed)} per rank (dense "
                         f"2**{qubits} x 2**{qubits} Hamiltonians), {available}{fits}")
    most = max(1, int(particles * limit / needed))
    raise ValueError(f"--particles {particles} needs about {format_bytes(needed)} per rank, {available}; "
                     f"use at most about {most} particles")
