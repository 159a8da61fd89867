"""What each command computes on a rank's share, and the shape of its answers.

Both the root and the workers look a command up here, so the two sides agree
on every buffer size from the header alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from .protocol import Command, Field, Split, code_dtype

__all__ = ["Output", "Operation", "OPERATIONS", "FLAG_RETURN_L"]

#: Header flag of SCORE: also gather the likelihood.
FLAG_RETURN_L = 1


@dataclass(frozen=True)
class Output:
    """One answer array: its full shape, dtype and the axis split between ranks."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axis: int


def _dims(header):
    return (
        int(header[Field.N_OUTCOMES]),
        int(header[Field.N_MODELS]),
        int(header[Field.N_EXPPARAMS]),
        int(header[Field.N_MODELPARAMS]),
    )


def _split_axis(header, models_axis, exps_axis):
    return models_axis if header[Field.SPLIT] == Split.MODELS else exps_axis


class Operation:
    """A command's local computation and the answers it gathers.

    Subclasses set ``name`` and the inputs they take, and implement
    :meth:`outputs` and :meth:`compute`.
    """

    name = ""
    takes_outcomes = False
    takes_expparams = True

    def outputs(self, header) -> list[Output]:
        """The full-size answers of a call with this header."""
        return []

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        """Run the serial model on one rank's share; return a tuple of arrays."""
        raise NotImplementedError


class Likelihood(Operation):
    name = "likelihood"
    takes_outcomes = True

    def outputs(self, header):
        n_out, n_models, n_exp, _ = _dims(header)
        return [Output((n_out, n_models, n_exp), np.dtype(np.float64), _split_axis(header, 1, 2))]

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
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

    def outputs(self, header):
        _, n_models, n_exp, _ = _dims(header)
        repeat = int(header[Field.REPEAT])
        dtype = code_dtype(int(header[Field.RESULT_DTYPE]))
        return [Output((repeat, n_models, n_exp), dtype, _split_axis(header, 1, 2))]

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        repeat = int(header[Field.REPEAT])
        with seeded(model, rank_seed_sequence(header[Field.SEED], rank)):
            result = model.simulate_experiment(modelparams, expparams, repeat=repeat)
        # Undo qinfer's squeeze of a single outcome to a scalar.
        return (np.reshape(result, (repeat, len(modelparams), len(expparams))),)


class Score(Operation):
    name = "score"
    takes_outcomes = True

    def outputs(self, header):
        n_out, n_models, n_exp, n_mp = _dims(header)
        f8 = np.dtype(np.float64)
        outs = [Output((n_mp, n_out, n_models, n_exp), f8, _split_axis(header, 2, 3))]
        if header[Field.FLAGS] & FLAG_RETURN_L:
            outs.append(Output((n_out, n_models, n_exp), f8, _split_axis(header, 1, 2)))
        return outs

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        if header[Field.FLAGS] & FLAG_RETURN_L:
            return tuple(model.score(outcomes, modelparams, expparams, return_L=True))
        return (model.score(outcomes, modelparams, expparams),)


class FisherInformation(Operation):
    name = "fisher_information"

    def outputs(self, header):
        _, n_models, n_exp, n_mp = _dims(header)
        return [Output((n_mp, n_mp, n_models, n_exp), np.dtype(np.float64), _split_axis(header, 2, 3))]

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        return (model.fisher_information(modelparams, expparams),)


class UpdateTimestep(Operation):
    name = "update_timestep"

    def outputs(self, header):
        _, n_models, n_exp, n_mp = _dims(header)
        dtype = code_dtype(int(header[Field.MODELPARAMS_DTYPE]))
        return [Output((n_models, n_mp, n_exp), dtype, _split_axis(header, 0, 2))]

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        with seeded(model, rank_seed_sequence(header[Field.SEED], rank)):
            return (model.update_timestep(modelparams, expparams),)


class AreModelsValid(Operation):
    name = "are_models_valid"
    takes_expparams = False

    def outputs(self, header):
        return [Output((int(header[Field.N_MODELS]),), np.dtype(bool), 0)]

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        return (model.are_models_valid(modelparams),)


class ClearCache(Operation):
    name = "clear_cache"
    takes_expparams = False

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        model.clear_cache()
        return ()


class Ping(Operation):
    """Does nothing: measures the cost of one round trip (benchmarks, calibration)."""

    name = "ping"
    takes_expparams = False

    def compute(self, model, outcomes, modelparams, expparams, header, rank):
        return ()


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
