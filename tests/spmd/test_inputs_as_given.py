"""Inputs that are not plain arrays meet the serial model's outcome, on every call and every path.

The parallel path hands every rank's model plain ndarrays. A list, a tuple or
an ndarray subclass given by the caller would arrive as something the serial
model never saw, so the proxy leaves such calls to the root's serial model:
what it accepts is answered bitwise, what it rejects is rejected the same way
-- on the first call as on the hundredth, whichever path the ``"auto"``
threshold has settled on. Run at 2 and 3 ranks.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_parallel, same_behaviour

from mpi_qinfer.models.builtin import SimplePrecessionModel

pytestmark = pytest.mark.mpi(min_size=2)

THRESHOLDS = [0, "auto", 10**9]
MODELPARAMS = np.linspace(0.01, 1, 300)[:, None]
TIMES = np.linspace(0.1, 3, 7)
CALLS = 8  # past the auto threshold's first measurements, so both of its paths are asked


class Particles(np.ndarray):
    """An ndarray subclass of the kind a user's code might carry its particles in."""


class StrictPrecession(SimplePrecessionModel):
    """Accepts only plain ndarrays, as models that use ``ndarray`` methods on their inputs do."""

    def likelihood(self, outcomes, modelparams, expparams):
        for name, value in (("outcomes", outcomes), ("modelparams", modelparams), ("expparams", expparams)):
            if type(value) is not np.ndarray:
                raise TypeError(f"{name} must be a numpy.ndarray, got {type(value).__name__}")
        return super().likelihood(outcomes, modelparams, expparams)


class LenientPrecession(SimplePrecessionModel):
    """Takes anything NumPy can turn into arrays."""

    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(np.asarray(outcomes), np.asarray(modelparams), np.asarray(expparams))


NOT_PLAIN = {
    "list modelparams": (np.arange(2), MODELPARAMS.tolist(), TIMES),
    "tuple modelparams": (np.arange(2), tuple(map(tuple, MODELPARAMS)), TIMES),
    "subclass modelparams": (np.arange(2), MODELPARAMS.view(Particles), TIMES),
    "list expparams": (np.arange(2), MODELPARAMS, TIMES.tolist()),
    "subclass expparams": (np.arange(2), MODELPARAMS, TIMES.view(Particles)),
    "list outcomes": ([0, 1], MODELPARAMS, TIMES),
    "tuple outcomes": ((1,), MODELPARAMS, TIMES),
}


def _every_call_as_the_serial_model(proxy, serial, arguments):
    for _ in range(CALLS):
        same_behaviour(lambda: serial.likelihood(*arguments), lambda: proxy.likelihood(*arguments))


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("name", list(NOT_PLAIN))
def test_inputs_the_serial_model_rejects_are_rejected_on_every_call(comm, threshold, name):
    arguments = NOT_PLAIN[name]
    run_parallel(comm, StrictPrecession(),
                 lambda proxy, serial: _every_call_as_the_serial_model(proxy, serial, arguments),
                 serial_threshold=threshold)


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_list_modelparams_of_the_precession_model_raise_its_type_error_every_time(comm, threshold):
    """The model indexes ``modelparams[:, 0]``, which a list refuses with a TypeError."""
    arguments = NOT_PLAIN["list modelparams"]

    def check(proxy, serial):
        with pytest.raises(TypeError):
            serial.likelihood(*arguments)
        _every_call_as_the_serial_model(proxy, serial, arguments)

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=threshold)


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("name", list(NOT_PLAIN))
def test_inputs_the_serial_model_accepts_are_answered_bitwise_on_every_call(comm, threshold, name):
    arguments = NOT_PLAIN[name]

    def check(proxy, serial):
        _every_call_as_the_serial_model(proxy, serial, arguments)
        assert proxy.engine.calls == 0  # the root's serial model answered them all

    run_parallel(comm, LenientPrecession(), check, serial_threshold=threshold)


@pytest.mark.parametrize("outcome", [0, 1, np.int64(1), True])
def test_a_scalar_outcome_still_runs_on_every_rank(comm, outcome):
    def check(proxy, serial):
        for _ in range(2):
            same_behaviour(lambda: serial.likelihood(outcome, MODELPARAMS, TIMES),
                           lambda: proxy.likelihood(outcome, MODELPARAMS, TIMES))
        assert proxy.engine.calls == 2

    run_parallel(comm, SimplePrecessionModel(), check, serial_threshold=0)
