"""The SMC updater whose particles live on every rank: its command loop, sums, resampling and regions.

``from mpi_qinfer.distributed import DistributedSMCUpdater`` (also ``from mpi_qinfer import ...``).
MPI is imported when an updater is built, not when this package is imported.
"""

from .updater import DistributedSMCUpdater

__all__ = ["DistributedSMCUpdater"]
