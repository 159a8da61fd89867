"""What is measured: the settings, the methods, and the cases (call shapes) sized to this node's memory.

A case is one likelihood call shape: a model, ``n_particles`` x ``n_exp``
evaluations, ``n_outcomes`` outcomes, and the axis the ranks split (particles
or experiments). The sweep crosses outcome counts 1, 2, 3 and 6 with 1 and
100 experiments and 1e3 to 1e5 particles (1e6 in the full run, memory
permitting), split by particles; 1e2 x 1e3 and 1e3 x 1e4 (more experiments
than particles, as in experiment design over many candidates) split by
experiments; the costly model at one outcome; and a slot
for record outcome dtypes, measured once the engine carries them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ...models.builtin import IsingChainModel, SimplePrecessionModel
from .probes import RECORD_OUTCOME_DTYPE, RecordOutcomeModel

__all__ = ["METHODS", "OUTCOME_COUNTS", "SPLITS", "Settings", "Case", "plan_cases", "select", "outcomes_for"]

#: The methods of the per-case table, in the order they are measured.
METHODS = ("serial", "proxy", "auto", "floor", "pickle")
#: The outcomes of the SMC update's call: one.
OUTCOMES = np.array([0], dtype=np.int64)
#: The outcome counts of the sweep: an SMC update (1), a two-outcome model's
#: every outcome (2, as experiment design asks), and more.
OUTCOME_COUNTS = (1, 2, 3, 6)
#: The axis the ranks divide: the proxy's ``split`` and the case's name suffix.
SPLITS = {"models": "", "experiments": "-exps"}
#: Largest fraction of the node's memory a case may need before it is skipped.
MEMORY_FRACTION = 0.25
#: The experiments, where the costly model is the 3-qubit Ising chain.
MODELS = {
    "cheap": ("SimplePrecessionModel()", SimplePrecessionModel),
    "costly": ("IsingChainModel(n_qubits=3)", lambda: IsingChainModel(n_qubits=3)),
    "record": ("RecordOutcomeModel()", RecordOutcomeModel),
}


def outcomes_for(n_outcomes: int, record: bool = False) -> np.ndarray:
    """The outcomes of a call with ``n_outcomes`` of them: 0, 1, 0, 1, ... (int64, or the record dtype)."""
    values = np.arange(n_outcomes, dtype=np.int64) % 2
    if not record:
        return values
    outcomes = np.zeros(n_outcomes, dtype=RECORD_OUTCOME_DTYPE)
    outcomes["k"] = values
    return outcomes


@dataclass
class Settings:
    """How long and how big: from the command line, the same on every rank.

    The timing budget of a case (``min_seconds``, 5 to 50 repeats,
    ``max_seconds`` for slow calls) is shared between ``rounds`` rounds; in
    each round every method is measured once, in a rotated order, so that a
    machine whose load drifts affects all methods alike.
    """

    quick: bool = False
    seed: int = 1234
    rounds: int = 3
    min_seconds: float = 0.3
    max_seconds: float = 5.0
    idle_seconds: float = 1.0
    smc_particles: int = 2000
    smc_experiments: int = 40
    smc_repeats: int = 5
    design_particles: int = 10_000
    design_candidates: int = 20
    design_experiments: int = 6
    design_repeats: int = 3
    balance_particles: int = 20_000

    @classmethod
    def from_args(cls, args) -> "Settings":
        """Defaults for ``--quick`` or the full run, overridden by explicit options."""
        s = cls(quick=bool(args.quick), seed=args.seed, idle_seconds=args.idle_seconds)
        if s.quick:
            s.max_seconds, s.smc_particles, s.smc_experiments, s.smc_repeats = 1.0, 1000, 20, 2
            s.balance_particles = 10_000
            s.design_experiments, s.design_repeats = 3, 1
        for name in ("rounds", "smc_particles", "smc_experiments", "design_particles", "design_experiments"):
            if getattr(args, name, None) is not None:
                setattr(s, name, getattr(args, name))
        return s

    def timing(self, rounds: int = 1, **overrides) -> dict:
        """Keyword arguments of :func:`~mpi_qinfer.cli.bench.timing.time_calls` for one of ``rounds`` rounds."""
        return {
            "min_seconds": self.min_seconds / rounds,
            "min_repeats": math.ceil(5 / rounds),
            "max_repeats": max(50 // rounds, 1),
            "max_seconds": self.max_seconds / rounds,
            **overrides,
        }


@dataclass
class Case:
    """One likelihood call shape: a model, ``n_particles`` x ``n_exp`` evaluations, outcomes, and the split.

    ``split`` is the axis the ranks divide (the proxy's ``split``):
    ``"models"`` (the particles) or ``"experiments"``.
    """

    model: str
    n_particles: int
    n_exp: int
    n_outcomes: int = 1
    split: str = "models"
    skip: str | None = None

    @property
    def name(self) -> str:
        """E.g. ``cheap-1e4x100`` (one outcome, split by particles), ``cheap-1e2x1000-o2-exps``."""
        outcomes = "" if self.n_outcomes == 1 else f"-o{self.n_outcomes}"
        return f"{self.model}-{_sci(self.n_particles)}x{self.n_exp}{outcomes}{SPLITS[self.split]}"

    @property
    def evaluations(self) -> int:
        """``n_particles * n_exp``: the work of the call as the threshold counts it."""
        return self.n_particles * self.n_exp

    @property
    def record(self) -> bool:
        """Whether the outcomes are of a record dtype."""
        return self.model == "record"

    @property
    def outcomes_dtype(self) -> np.dtype:
        """The dtype of the case's outcomes."""
        return np.dtype(RECORD_OUTCOME_DTYPE) if self.record else np.dtype(np.int64)

    def make_model(self):
        """A fresh serial model of this case's kind."""
        return MODELS[self.model][1]()

    def data(self, seed: int):
        """The call's ``(outcomes, modelparams, expparams)``, from a seeded generator.

        The particles and experiments depend on the model kind and the size
        only, so every outcome count and split of a size sees the same data.
        """
        model = self.make_model()
        rng = np.random.default_rng([seed, self.n_particles, self.n_exp, len(self.model)])
        modelparams = rng.uniform(0.0, 1.0, (self.n_particles, model.n_modelparams))
        expparams = np.empty(self.n_exp, dtype=model.expparams_dtype)
        expparams[:] = rng.uniform(0.0, 20.0, self.n_exp)
        return outcomes_for(self.n_outcomes, self.record), modelparams, expparams

    def memory_bytes(self) -> int:
        """A generous estimate of the node's peak memory while this case runs.

        Six results' worth (the serial reference, the answer, the model's
        temporaries, and the pickle map's pickled and unpickled copies) plus
        three copies of the particles.
        """
        n_mp = 2 if self.model == "costly" else 1
        result = 8 * self.n_particles * self.n_exp * self.n_outcomes
        return 6 * result + 3 * 8 * self.n_particles * n_mp


def _sci(n: int) -> str:
    exponent = int(round(math.log10(n))) if n > 0 else 0
    return f"1e{exponent}" if n == 10**exponent else str(n)


def _total_memory() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def plan_cases(quick: bool, total_memory: int | None = None) -> list[Case]:
    """The per-case table's rows, with a ``skip`` reason for any too big for this node.

    Parameters
    ----------
    quick : bool
        Leave out the biggest cases: no 1e6 particles, no call with more than
        1e7 likelihood values (outcomes x particles x experiments), no costly
        1e5, and fewer experiments-split shapes.
    total_memory : int, optional
        Bytes of memory of the node; default read from ``/proc/meminfo``.

    Returns
    -------
    list of Case
    """
    cases = []
    for n_exp in (1, 100):
        for n in (10**3, 10**4, 10**5, 10**6):
            for n_out in OUTCOME_COUNTS:
                if quick and (n > 10**5 or n * n_exp * n_out > 10**7):
                    continue
                cases.append(Case("cheap", n, n_exp, n_out))
    # More experiments than particles (candidate experiments in design): split by experiments.
    for n, n_exp in ((10**2, 10**3), (10**3, 10**4)):
        for n_out in OUTCOME_COUNTS:
            if quick and (n_out == 3 or n * n_exp * n_out > 10**7):
                continue
            cases.append(Case("cheap", n, n_exp, n_out, split="experiments"))
    for n in (10**3, 10**4, 10**5):
        if quick and n > 10**4:
            continue
        cases.append(Case("costly", n, 1))
    cases.append(Case("record", 10**4, 1, 2))
    total = _total_memory() if total_memory is None else total_memory
    if total:
        for case in cases:
            need = case.memory_bytes()
            if case.skip is None and need > MEMORY_FRACTION * total:
                case.skip = (f"needs about {need / 2**30:.1f} GiB, more than {MEMORY_FRACTION:.0%} "
                             f"of this node's {total / 2**30:.1f} GiB")
    return cases


def select(names, patterns) -> set:
    """The names chosen by ``--cases``: each pattern picks the name equal to it, else every name containing it.

    Parameters
    ----------
    names : iterable of str
    patterns : list of str or None
        None chooses everything.

    Returns
    -------
    set of str
    """
    names = list(names)
    if not patterns:
        return set(names)
    chosen = set()
    for pattern in patterns:
        if pattern in names:
            chosen.add(pattern)
        else:
            chosen.update(name for name in names if pattern in name)
    return chosen
