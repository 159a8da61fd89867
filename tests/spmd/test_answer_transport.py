"""Answers on their way back to the root: ones that cannot travel, and ones not laid out in C order.

A worker's answer crosses the wire as the raw bytes of its dtype, in C order.
Two ways that could go wrong, each run at 2 and 3 ranks against the serial
model:

* an answer that holds Python objects has pointers for bytes, meaningless on
  any other rank: every rank must refuse it the same way (a ``TypeError``
  naming the dtype) and the engine must go on serving -- no crash, no rank
  left waiting;
* an answer the model returns in Fortran order, or as a strided view, must
  arrive as its values, whatever its memory order.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import run_mpi_script, run_parallel, same_behaviour

from mpi_qinfer import RemoteError
from mpi_qinfer.models.base import IntegerDomain
from mpi_qinfer.models.builtin import SimplePrecessionModel

#: (n_models, n_expparams): one-block gathers (split by models), and both multi-block
#: ways of placing shares (short blocks staged, long blocks placed by a datatype).
SHAPES = [(41, 9), (3, 400), (400, 3)]
RECORD_WITH_OBJECT = np.dtype([("p", np.float64), ("note", object)])


def _world_rank() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


class ObjectAnswers(SimplePrecessionModel):
    """Its likelihood is the precession model's, held in an array of ``dtype`` (objects by default).

    ``ranks``: the world ranks whose answers are of that dtype (None: every
    rank); the others answer in float64.
    """

    def __init__(self, dtype=object, ranks=None):
        super().__init__()
        self.dtype, self.ranks = np.dtype(dtype), ranks

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        if self.ranks is not None and _world_rank() not in self.ranks:
            return answer
        if self.dtype.names:
            held = np.empty(answer.shape, self.dtype)
            held["p"], held["note"] = answer, "a note"
            return held
        return answer.astype(self.dtype)


class ObjectDomain(IntegerDomain):
    """Outcomes 0 and 1 that the model says are Python objects."""

    @property
    def dtype(self):
        return np.dtype(object)


class ObjectOutcomes(SimplePrecessionModel):
    """Simulates outcomes as Python ints in an object array, and says so in its domain."""

    def domain(self, expparams):
        return ObjectDomain(0, 1)

    def simulate_experiment(self, modelparams, expparams, repeat=1):
        return np.zeros((repeat, len(modelparams), len(expparams)), dtype=object)


class Reordered(SimplePrecessionModel):
    """The precession model's likelihood, returned as a Fortran-ordered copy or a strided view."""

    def __init__(self, layout):
        super().__init__()
        self.layout = layout

    def likelihood(self, outcomes, modelparams, expparams):
        answer = super().likelihood(outcomes, modelparams, expparams)
        if self.layout == "fortran":
            return np.asfortranarray(answer)
        wide = np.zeros(answer.shape + (2,))
        wide[..., 0] = answer
        return wide[..., 0]  # the same values, every other float64 of a wider array


def _refused(call, dtype):
    """Run ``call``; assert it raised the TypeError of an answer that cannot travel; return that error."""
    pattern = f"returned an array of dtype {re.escape(str(np.dtype(dtype)))}.*cannot be moved between MPI ranks"
    with pytest.raises(TypeError, match=pattern) as caught:
        call()
    return caught.value


# ------------------------------------------------------------------ answers holding objects
@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("n_outcomes", [1, 2])
@pytest.mark.parametrize("n_models, n_exp", SHAPES)
def test_object_answers_are_refused_by_every_rank_alike_and_the_engine_goes_on(comm, n_outcomes, n_models, n_exp):
    size = comm.Get_size()
    modelparams, expparams = np.linspace(0.01, 1, n_models)[:, None], np.linspace(0.1, 3, n_exp)
    outcomes = np.arange(n_outcomes)

    def check(proxy, serial):
        for _ in range(3):  # the same refusal every time, and the ranks still in step after each
            error = _refused(lambda: proxy.likelihood(outcomes, modelparams, expparams), "object")
            assert isinstance(error.__cause__, RemoteError) and error.__cause__.ranks == list(range(size))
        # The engine still serves: another command on the same proxy, bitwise the serial answer.
        same_behaviour(lambda: serial.are_models_valid(modelparams), lambda: proxy.are_models_valid(modelparams))

    run_parallel(comm, ObjectAnswers(), check, serial_threshold=0)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("n_outcomes", [1, 2])
def test_a_record_answer_with_an_object_field_is_refused_too(comm, n_outcomes):
    modelparams, expparams = np.linspace(0.01, 1, 41)[:, None], np.linspace(0.1, 3, 9)

    def check(proxy, serial):
        _refused(lambda: proxy.likelihood(np.arange(n_outcomes), modelparams, expparams), RECORD_WITH_OBJECT)

    run_parallel(comm, ObjectAnswers(RECORD_WITH_OBJECT), check, serial_threshold=0)


@pytest.mark.mpi(min_size=2)
def test_objects_from_one_worker_alone_are_refused_on_the_root(comm):
    modelparams, expparams = np.linspace(0.01, 1, 41)[:, None], np.linspace(0.1, 3, 9)

    def check(proxy, serial):
        error = _refused(lambda: proxy.likelihood(np.arange(2), modelparams, expparams), "object")
        assert error.__cause__.ranks == [1]
        one, time = modelparams[:1], expparams[:1]
        same_behaviour(lambda: serial.likelihood(np.arange(2), one, time),
                       lambda: proxy.likelihood(np.arange(2), one, time))

    # (On one evaluation the serial model runs alone on the root, which answers in float64.)
    run_parallel(comm, ObjectAnswers(ranks=[1]), check, serial_threshold=2)


@pytest.mark.mpi(min_size=2)
def test_objects_the_domain_announces_are_refused_as_well(comm):
    """The expected dtype of a simulation comes from the model's domain; objects are never expected."""
    modelparams, expparams = np.linspace(0.01, 1, 41)[:, None], np.linspace(0.1, 3, 9)

    def check(proxy, serial):
        for _ in range(2):
            _refused(lambda: proxy.simulate_experiment(modelparams, expparams, repeat=2), "object")
        assert proxy.engine.dtypes.id_of(np.dtype(object)) is None  # never announced to the workers

    run_parallel(comm, ObjectOutcomes(), check, serial_threshold=0, seed=1)


@pytest.mark.mpi(min_size=2)
def test_object_answers_meet_the_same_outcome_on_every_call_and_the_serial_one_below_the_threshold(comm):
    modelparams, expparams = np.linspace(0.01, 1, 41)[:, None], np.linspace(0.1, 3, 9)

    def auto(proxy, serial):
        for _ in range(8):  # the auto threshold never times a refused call: it refuses every one
            _refused(lambda: proxy.likelihood(np.arange(2), modelparams, expparams), "object")

    def below(proxy, serial):  # what the serial model returns, the proxy returns when it runs the call alone
        for _ in range(3):
            same_behaviour(lambda: serial.likelihood(np.arange(2), modelparams, expparams),
                           lambda: proxy.likelihood(np.arange(2), modelparams, expparams))

    run_parallel(comm, ObjectAnswers(), auto, serial_threshold="auto")
    run_parallel(comm, ObjectAnswers(), below, serial_threshold=10**6)


OBJECT_JOB = """
import numpy as np
from mpi4py import MPI
from mpi_qinfer import MPIParallelizedModel
from mpi_qinfer.models.builtin import SimplePrecessionModel

class ObjectAnswers(SimplePrecessionModel):
    def likelihood(self, outcomes, modelparams, expparams):
        return super().likelihood(outcomes, modelparams, expparams).astype(object)

with MPIParallelizedModel(ObjectAnswers(), serial_threshold=0) as model:
    if model.is_root:
        for n_outcomes in (1, 2, 1):
            try:
                model.likelihood(np.arange(n_outcomes), np.linspace(0, 1, 10)[:, None], np.array([0.5, 1.0]))
                print("answered", flush=True)
            except TypeError as error:
                print(f"refused {n_outcomes} {'dtype object' in str(error)}", flush=True)
print(f"rank {MPI.COMM_WORLD.Get_rank()} finished", flush=True)  # one write: ranks share stdout
"""


@pytest.mark.parametrize("n_ranks", [2, 3])
def test_a_job_whose_model_answers_objects_ends_cleanly(tmp_path, n_ranks):
    """Once a crash (one outcome: the root read a worker's pointers) and a hang (two: a worker left waiting)."""
    done, _ = run_mpi_script(tmp_path, OBJECT_JOB, n_ranks=n_ranks, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused") == 3 and "False" not in done.stdout and "answered" not in done.stdout
    assert all(f"rank {rank} finished" in done.stdout for rank in range(n_ranks))


# ------------------------------------------------------------------ answers not in C order
@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("layout", ["fortran", "strided"])
@pytest.mark.parametrize("n_outcomes", [1, 2])
@pytest.mark.parametrize("n_models, n_exp", SHAPES)
def test_answers_in_another_memory_order_arrive_as_their_values(comm, layout, n_outcomes, n_models, n_exp):
    modelparams, expparams = np.linspace(0.01, 1, n_models)[:, None], np.linspace(0.1, 3, n_exp)
    outcomes = np.arange(n_outcomes)

    def check(proxy, serial):
        for _ in range(2):  # the first call, and one on the plan it made
            same_behaviour(lambda: serial.likelihood(outcomes, modelparams, expparams),
                           lambda: proxy.likelihood(outcomes, modelparams, expparams))

    run_parallel(comm, Reordered(layout), check, serial_threshold=0)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_answers_in_another_memory_order_on_loopback_ranks(size, layout):
    """The same, in one process (loopback ranks), so that the serial suite sees it too."""
    from loopback import run_ranks

    from mpi_qinfer import MPIParallelizedModel

    modelparams, expparams, outcomes = np.linspace(0.01, 1, 41)[:, None], np.linspace(0.1, 3, 9), np.arange(2)

    def target(comm):
        with MPIParallelizedModel(Reordered(layout), comm=comm, serial_threshold=0, idle="spin") as proxy:
            if proxy.is_root:
                return [proxy.likelihood(outcomes, modelparams, expparams) for _ in range(2)]
        return None

    answers = run_ranks(size, target)[0]
    for answer in answers:
        same_behaviour(lambda: Reordered(layout).likelihood(outcomes, modelparams, expparams),
                       lambda answer=answer: answer)
