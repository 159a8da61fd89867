"""What is measured: the settings, the methods, and the cases (call shapes) sized to this node's memory."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ..models import IsingChainModel, SimplePrecessionModel

__all__ = ["METHODS", "Settings", "Case", "plan_cases", "select"]

#: The methods of the per-case table, in the order they are measured.
METHODS = ("serial", "proxy", "auto", "floor", "pickle")
#: The outcomes of every call: one, as in an SMC update.
OUTCOMES = np.array([0], dtype=np.int64)
#: Largest fraction of the node's memory a case may need before it is skipped.
MEMORY_FRACTION = 0.25
#: The experiments, where the costly model is the 3-qubit Ising chain.
MODELS = {
    "cheap": ("SimplePrecessionModel()", SimplePrecessionModel),
    "costly": ("IsingChainModel(n_qubits=3)", lambda: IsingChainModel(n_qubits=3)),
}


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
    smc_repeats: int = 3
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
        """Keyword arguments of :func:`~mpi_qinfer.bench.timing.time_calls` for one of ``rounds`` rounds."""
        return {
            "min_seconds": self.min_seconds / rounds,
            "min_repeats": math.ceil(5 / rounds),
            "max_repeats": max(50 // rounds, 1),
            "max_seconds": self.max_seconds / rounds,
            **overrides,
        }


@dataclass
class Case:
    """One likelihood call shape: a model and a cloud of ``n_particles`` times ``n_exp`` experiments."""

    model: str
    n_particles: int
    n_exp: int
    skip: str | None = None

    @property
    def name(self) -> str:
        """E.g. ``cheap-1e4x100``."""
        return f"{self.model}-{_sci(self.n_particles)}x{self.n_exp}"

    def make_model(self):
        """A fresh serial model of this case's kind."""
        return MODELS[self.model][1]()

    def data(self, seed: int):
        """The call's ``(outcomes, modelparams, expparams)``, from a seeded generator."""
        model = self.make_model()
        rng = np.random.default_rng([seed, self.n_particles, self.n_exp, len(self.model)])
        modelparams = rng.uniform(0.0, 1.0, (self.n_particles, model.n_modelparams))
        expparams = np.empty(self.n_exp, dtype=model.expparams_dtype)
        expparams[:] = rng.uniform(0.0, 20.0, self.n_exp)
        return OUTCOMES.copy(), modelparams, expparams

    def memory_bytes(self) -> int:
        """A generous estimate of the node's peak memory while this case runs.

        Six results' worth (the serial reference, the answer, the model's
        temporaries, and the pickle map's pickled and unpickled copies) plus
        three copies of the particles.
        """
        n_mp = 1 if self.model == "cheap" else 2
        result = 8 * self.n_particles * self.n_exp * len(OUTCOMES)
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
        Leave out the biggest cases (cheap 1e6 x 100, costly 1e5).
    total_memory : int, optional
        Bytes of memory of the node; default read from ``/proc/meminfo``.

    Returns
    -------
    list of Case
    """
    cases = []
    for n_exp in (1, 100):
        for n in (10**3, 10**4, 10**5, 10**6):
            if quick and n * n_exp > 10**7:
                continue
            cases.append(Case("cheap", n, n_exp))
    for n in (10**3, 10**4, 10**5):
        if quick and n > 10**4:
            continue
        cases.append(Case("costly", n, 1))
    total = _total_memory() if total_memory is None else total_memory
    if total:
        for case in cases:
            need = case.memory_bytes()
            if need > MEMORY_FRACTION * total:
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
