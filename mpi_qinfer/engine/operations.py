"""What each command computes on a rank's share, and the shape of its answers.

Both the root and the workers look a command up here and read nothing but
the call's :class:`~mpi_qinfer.engine.protocol.CallSpec`, so the two sides agree on
every buffer size from the spec alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from .protocol import CallSpec, Command, Split

__all__ = ["Output", "Operation", "OPERATIONS", "seeded", "rank_seed_sequence"]


@dataclass(frozen=True)
class Output:
    """One answer array: its full shape and the axis split between ranks (its dtype is the spec's)."""

    shape: tuple[int, ...]
    axis: int


def _split_axis(spec: CallSpec, models_axis: int, exps_axis: int) -> int:
    return models_axis if spec.split == Split.MODELS else exps_axis


class Operation:
    """A command's local computation and the answers it gathers.

    Subclasses set ``name`` and the inputs they take, and implement
    :meth:`outputs` and :meth:`compute`.
    """

    name = ""
    #: Whether the call broadcasts outcomes to every rank.
    takes_outcomes = False
    #: Whether the call has expparams (are_models_valid has none).
    takes_expparams = True
    #: Whether the answer depends on random draws (seeded per rank, see :func:`seeded`).
    random = False

    def outputs(self, spec: CallSpec) -> list[Output]:
        """The full-size answers of a call described by ``spec``."""
        return []

    def compute(self, model, spec: CallSpec, outcomes, modelparams, expparams, rank: int) -> tuple:
        """Run the serial model on one rank's share; return a tuple of arrays."""
        raise NotImplementedError


class Likelihood(Operation):
    name = "likelihood"
    takes_outcomes = True

    def outputs(self, spec):
        return [Output((spec.outcome_rows, spec.n_models, spec.n_expparams), _split_axis(spec, 1, 2))]

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        return (model.likelihood(outcomes, modelparams, expparams),)


@contextlib.contextmanager
def seeded(model, seed_sequence):
    """Run a model's simulation on streams of its own, restoring the old ones after.

    Models of this package draw from ``model.rng``; models that use the legacy
    global ``np.random`` (qinfer's, also when wrapped in one of our derived
    models) draw from the global state. Both are seeded from ``seed_sequence``
    and put back afterwards, so the caller's own streams are left as they were.
    """
    has_rng = hasattr(model, "rng")
    previous_rng = model.rng if has_rng else None
    previous_state = np.random.get_state()
    rng_seed, legacy_seed = seed_sequence.spawn(2)
    if has_rng:
        model.rng = np.random.default_rng(rng_seed)
    np.random.seed(legacy_seed.generate_state(4))
    try:
        yield
    finally:
        np.random.set_state(previous_state)
        if has_rng:
            model.rng = previous_rng


def rank_seed_sequence(seed: int, rank: int) -> np.random.SeedSequence:
    """The independent stream of ``rank`` for a call whose root drew ``seed``."""
    return np.random.SeedSequence(int(seed) & 0xFFFFFFFFFFFFFFFF, spawn_key=(rank,))


class Simulate(Operation):
    name = "simulate_experiment"
    random = True

    def outputs(self, spec):
        return [Output((spec.repeat, spec.n_models, spec.n_expparams), _split_axis(spec, 1, 2))]

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        repeat = spec.repeat
        with seeded(model, rank_seed_sequence(spec.seed, rank)):
            result = model.simulate_experiment(modelparams, expparams, repeat=repeat)
        # Undo qinfer's squeeze of a single outcome to a scalar.
        result = np.asarray(result)
        return (result.reshape((repeat, len(modelparams), len(expparams))),)


class Score(Operation):
    name = "score"
    takes_outcomes = True

    def outputs(self, spec):
        n_out = spec.outcome_rows
        outs = [Output((spec.n_modelparams, n_out, spec.n_models, spec.n_expparams), _split_axis(spec, 2, 3))]
        if spec.return_likelihood:
            outs.append(Output((n_out, spec.n_models, spec.n_expparams), _split_axis(spec, 1, 2)))
        return outs

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        if spec.return_likelihood:
            return tuple(model.score(outcomes, modelparams, expparams, return_L=True))
        return (model.score(outcomes, modelparams, expparams),)


class FisherInformation(Operation):
    name = "fisher_information"

    def outputs(self, spec):
        n_mp = spec.n_modelparams
        return [Output((n_mp, n_mp, spec.n_models, spec.n_expparams), _split_axis(spec, 2, 3))]

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        return (model.fisher_information(modelparams, expparams),)


class UpdateTimestep(Operation):
    name = "update_timestep"
    random = True

    def outputs(self, spec):
        return [Output((spec.n_models, spec.n_modelparams, spec.n_expparams), _split_axis(spec, 0, 2))]

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        with seeded(model, rank_seed_sequence(spec.seed, rank)):
            return (model.update_timestep(modelparams, expparams),)


class AreModelsValid(Operation):
    name = "are_models_valid"
    takes_expparams = False

    def outputs(self, spec):
        return [Output((spec.n_models,), 0)]

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        return (model.are_models_valid(modelparams),)


class ClearCache(Operation):
    name = "clear_cache"
    takes_expparams = False

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        model.clear_cache()
        return ()


class Ping(Operation):
    """Does nothing: measures the cost of one round trip (benchmarks, calibration)."""

    name = "ping"
    takes_expparams = False

    def compute(self, model, spec, outcomes, modelparams, expparams, rank):
        return ()


#: The model calls, by command. SHUTDOWN, SYNC_MODEL, DEFINE_DTYPE and
#: COLLECTIVE are the engine's own commands and have no operation.
OPERATIONS = {
    Command.LIKELIHOOD: Likelihood(),
    Command.SIMULATE: Simulate(),
    Command.SCORE: Score(),
    Command.FISHER_INFORMATION: FisherInformation(),
    Command.UPDATE_TIMESTEP: UpdateTimestep(),
    Command.ARE_MODELS_VALID: AreModelsValid(),
    Command.CLEAR_CACHE: ClearCache(),
    Command.PING: Ping(),
}
