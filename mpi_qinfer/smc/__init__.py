"""Serial sequential Monte Carlo: the updater and its resampler, experiment design, posterior summaries,
plots, checkpoints and performance testing.

No MPI here; :mod:`mpi_qinfer.distributed` spreads the same algorithm's particles over ranks. The
names of :mod:`~mpi_qinfer.smc.updater`, the heuristics and qinfer's ``ParticleDistribution`` are
re-exported (``from mpi_qinfer.smc import SMCUpdater``), and so, by the package, is every name of
``__all__`` here.
"""

from .perf_testing import load_perf_trials, perf_test, perf_test_multiple, timing
from .simple_est import simple_est_prec, simple_est_rb
from .updater import (
    ZERO_WEIGHT_POLICIES,
    ApproximationWarning,
    LiuWestResampler,
    PriorDimensionWarning,
    Resampler,
    ResamplerError,
    ResamplerWarning,
    SMCUpdater,
    UpdaterRecord,
)

__all__ = ["LiuWestResampler", "UpdaterRecord", "SMCUpdater", "ApproximationWarning", "ResamplerWarning",
           "ZERO_WEIGHT_POLICIES", "perf_test", "perf_test_multiple", "timing", "load_perf_trials",
           "PriorDimensionWarning", "simple_est_prec", "simple_est_rb", "Resampler", "ResamplerError"]

from .bcrb import SMCUpdaterBCRB  # noqa: E402
from .heuristics import PGH, BestCandidateHeuristic, ExpSparseHeuristic, Heuristic  # noqa: E402
from .particles import ParticleDistribution  # noqa: E402

__all__ += ["Heuristic", "ExpSparseHeuristic", "PGH", "BestCandidateHeuristic", "ParticleDistribution",
            "SMCUpdaterBCRB"]
