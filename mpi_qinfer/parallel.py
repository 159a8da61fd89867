"""MPIParallelizedModel: the root-side proxy that spreads a serial model's calls over MPI ranks."""

from __future__ import annotations

import sys
import time

import numpy as np

from .balance import make_balance
from .engine import Engine
from .errors import EngineClosedError
from .model import DerivedModel
from .operations import FLAG_RETURN_L
from .protocol import Command, Split, dtype_code
from .threshold import ThresholdPolicy
from .validation import as_expparams, as_modelparams, as_outcomes, as_repeat

__all__ = ["MPIParallelizedModel"]

_SPLITS = {"auto": None, "models": Split.MODELS, "experiments": Split.EXPERIMENTS}
# Plain ints for the hot path: attribute access on an Enum class is slow in Python 3.11.
_LIKELIHOOD = int(Command.LIKELIHOOD)
_BY_MODELS, _BY_EXPERIMENTS = int(Split.MODELS), int(Split.EXPERIMENTS)


class MPIParallelizedModel(DerivedModel):
    """A qinfer-style model whose heavy calls run on every rank of an MPI communicator.

    Construction is collective: every rank of ``comm`` builds its own serial
    model and passes it in (nothing is pickled). The root then uses the proxy
    exactly like the serial model; the other ranks serve, either inside
    ``with`` or in :meth:`serve`.

    Parameters
    ----------
    serial_model : Model
        This rank's copy of the serial model (this package's or a qinfer model).
    comm : mpi4py.MPI.Intracomm, optional
        Ranks to use (duplicated). Default ``MPI.COMM_WORLD``. Ignored when
        ``engine`` is given.
    root : int
        Rank that runs the inference. Ignored when ``engine`` is given.
    serial_threshold : int or "auto"
        Calls with fewer evaluations (``n_models * n_expparams``) than this
        run on the root's serial model alone. ``"auto"`` (default) measures
        both paths and takes the faster one per size class; ``0`` always
        runs in parallel.
    split : {"auto", "models", "experiments"}
        Axis divided between ranks. ``"auto"`` splits the longer of
        ``n_models`` and ``n_expparams``. The answer is the same either way.
    balance : {"even", "adaptive"} or sequence of float
        How rows are shared: evenly (default), in proportion to fixed
        per-rank weights (e.g. relative core speeds), or ``"adaptive"``:
        following each rank's measured compute speed, smoothed.
    engine : Engine, optional
        An existing engine to share with other proxies (their calls are then
        served by one worker loop). By default the proxy makes its own.
    seed : int or numpy.random.SeedSequence, optional
        Seeds the proxy's own generator, which draws one seed per parallel
        random call (:meth:`simulate_experiment`, a parallel
        :meth:`update_timestep`); see :meth:`reseed`. Never the global
        ``np.random`` stream, which stays the user's.
    idle, backoff_max
        How idle workers wait; see :class:`~mpi_qinfer.engine.Engine`.

    Examples
    --------
    Every rank runs the same script::

        with MPIParallelizedModel(SimplePrecessionModel()) as model:
            if model.is_root:
                updater = SMCUpdater(model, 10_000, UniformDistribution([0, 1]))
                ...
    """

    def __init__(self, serial_model, comm=None, root: int = 0, serial_threshold="auto", *,
                 split: str = "auto", balance="even", engine: Engine | None = None,
                 seed=None, idle: str | None = None, backoff_max: float | None = None):
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
        if "qinfer" in sys.modules:  # the user works with qinfer: pass its isinstance checks
            from .interop import register_with_qinfer

            register_with_qinfer()
        self._policy = ThresholdPolicy(serial_threshold)
        self._seeds = np.random.default_rng(seed)
        super().__init__(serial_model)
        self._split = _SPLITS[split]
        self._owns_engine = engine is None
        if engine is None:
            engine = Engine(comm, root, idle=idle, backoff_max=backoff_max)
        self._engine = engine
        self._alone = engine.size == 1  # every call runs serially on this rank
        try:
            self._balance = make_balance(balance, engine.size)
            self._model_id = engine.register(serial_model)
            self._expparams_dtype = np.dtype(serial_model.expparams_dtype)
        except BaseException:
            if self._owns_engine:
                engine.close_collectively()
            raise

    # ---------------------------------------------------------- properties
    @property
    def engine(self) -> Engine | None:
        """The engine that runs this proxy's calls (None once unpickled)."""
        return self._engine

    @property
    def comm(self):
        """The engine's private communicator (a duplicate of the one given)."""
        return self._live_engine().comm

    @property
    def is_root(self) -> bool:
        """Whether this rank runs the inference (True for an unpickled, serial proxy)."""
        return self._engine is None or self._engine.is_root

    @property
    def n_engines(self) -> int:
        """Number of ranks that compute, the root included."""
        return 1 if self._engine is None else self._engine.size

    @property
    def serial_model(self):
        """This rank's serial model."""
        return self.underlying_model

    @property
    def serial_threshold(self):
        """The threshold given at construction (an int, or ``"auto"``)."""
        return self._policy.threshold

    @property
    def balance(self):
        """The load-balancing policy (see :mod:`mpi_qinfer.balance`)."""
        return self._balance

    @property
    def threshold_policy(self) -> ThresholdPolicy:
        """The object deciding serial versus parallel, with what it has learned."""
        return self._policy

    def reseed(self, seed) -> None:
        """Restart the generator of per-call seeds: the next parallel random calls repeat.

        With the same seed, number of ranks and split, :meth:`simulate_experiment`
        returns the same draws.
        """
        self._seeds = np.random.default_rng(seed)

    def _draw_seed(self) -> int:
        return int(self._seeds.integers(0, 2**63 - 1))

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        engine = self._live_engine()
        engine.__enter__()
        return self

    def __exit__(self, *exc_info):
        if self._engine is not None:
            self._engine.shutdown()
        return False

    def serve(self) -> None:
        """Serve the root's calls until it shuts down (workers; returns then)."""
        self._live_engine().serve()

    def shutdown(self) -> None:
        """Release the workers and free the communicator (root; idempotent)."""
        if self._engine is not None:
            self._engine.shutdown()

    def __getstate__(self):
        # A communicator cannot travel; an unpickled proxy runs serially.
        state = self.__dict__.copy()
        state["_engine"] = None
        state["_owns_engine"] = False
        state["_alone"] = True
        return state

    def _live_engine(self) -> Engine:
        if self._engine is None:
            raise EngineClosedError("this proxy was unpickled or copied and has no MPI engine; it runs serially")
        return self._engine

    def _parallel_engine(self, command: int, work: int, wanted: bool | None = None) -> Engine | None:
        """The engine to run a call on, or None to run it serially.

        ``wanted`` overrides the threshold policy's decision.
        """
        engine = self._engine
        if engine is None:
            return None
        if engine.closed:
            raise EngineClosedError("the proxy has been shut down; no more parallel calls can be made")
        if not engine.is_root:
            raise RuntimeError("the proxy's model calls are made on the root; workers run serve()")
        if engine.size == 1 or work == 0:
            return None
        if wanted is None:
            wanted = self._policy.use_parallel(command, work)
        return engine if wanted else None

    def _engine_closed(self) -> bool:
        engine = self._engine
        return engine is not None and engine.closed

    def _random_call_engine(self, command: int, work: int, auto_threshold: int | None) -> Engine | None:
        """The engine for a call that may draw random numbers, or None to run it on the root.

        Which path runs decides the random streams used, so this choice never
        depends on timings: a fixed ``serial_threshold`` decides, or in
        ``"auto"`` mode ``auto_threshold`` (None: always on the root).
        """
        threshold = auto_threshold if self._policy.learns else self._policy.threshold
        return self._parallel_engine(command, work, wanted=threshold is not None and work >= threshold)

    def _choose_split(self, n_models: int, n_exp: int) -> Split:
        if self._split is not None:
            return self._split
        return _BY_MODELS if n_models >= n_exp else _BY_EXPERIMENTS

    def _dispatch(self, command, modelparams, expparams, serial, from_answers=lambda answers: answers[0], **call):
        """Run ``serial()`` on the root, or the command on every rank; feed the policies.

        ``from_answers`` turns the list of gathered arrays into what the serial
        model would have returned.
        """
        work = len(modelparams) * (1 if expparams is None else len(expparams))
        engine = self._parallel_engine(command, work)
        policy = self._policy
        if engine is None:
            if not policy.learns or self._alone or work == 0:
                return serial()  # nothing to learn: there is no other path
            start = time.perf_counter()
            result = serial()
            policy.record(command, work, False, time.perf_counter() - start)
            return result
        split = _BY_MODELS if expparams is None else self._choose_split(len(modelparams), len(expparams))
        n_rows, per_row = (len(modelparams), work // len(modelparams))
        if split == _BY_EXPERIMENTS:
            n_rows, per_row = len(expparams), len(modelparams)
        start = time.perf_counter()
        answers = engine.call(
            command, self._model_id, split, modelparams=modelparams, expparams=expparams,
            modelparams_code=dtype_code(modelparams.dtype), counts=self._balance.counts(n_rows), **call,
        )
        if policy.learns:
            elapsed = time.perf_counter() - start
            root_rows, root_seconds = engine.root_share
            estimate = root_seconds * n_rows / root_rows if root_rows else None
            policy.record(command, work, True, elapsed, estimate)
        if self._balance.learns:
            self._balance.record(engine.last_counts, per_row, engine.compute_seconds)
        return from_answers(answers)

    def _arrays(self, modelparams, expparams=None):
        serial_model = self.underlying_model
        modelparams = as_modelparams(modelparams, serial_model.n_modelparams)
        if expparams is not None:
            expparams = as_expparams(expparams, self._expparams_dtype)
        return modelparams, expparams

    # --------------------------------------------------------- model calls
    def likelihood(self, outcomes, modelparams, expparams):
        """Likelihoods of ``outcomes``, shape ``(n_outcomes, n_models, n_expparams)``.

        Bitwise the serial model's answer, computed across all ranks.
        """
        if (type(modelparams) is np.ndarray and type(expparams) is np.ndarray
                and modelparams.ndim == 2 and expparams.ndim == 1
                and (self._alone or self._policy.settled_serial(_LIKELIHOOD, len(modelparams) * len(expparams)))
                and not self._engine_closed()):
            # A call that runs serially anyway: straight to the serial model, as cheap as calling it.
            n_outcomes = outcomes.size if type(outcomes) is np.ndarray else np.size(outcomes)
            self._call_count += n_outcomes * len(modelparams) * len(expparams)
            return self._underlying_model.likelihood(outcomes, modelparams, expparams)
        outcomes = as_outcomes(outcomes)
        modelparams, expparams = self._arrays(modelparams, expparams)
        self._call_count += len(outcomes) * len(modelparams) * len(expparams)
        return self._dispatch(
            _LIKELIHOOD, modelparams, expparams,
            lambda: self.underlying_model.likelihood(outcomes, modelparams, expparams),
            outcomes=outcomes, outcomes_code=dtype_code(outcomes.dtype),
        )

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1, split_by_modelparams: bool = True):
        """Simulated outcomes, shape ``(repeat, n_models, n_expparams)`` (a scalar if one element).

        In parallel, rank ``r`` draws from a stream seeded by
        ``SeedSequence(seed, spawn_key=(r,))``, where ``seed`` comes from the
        proxy's own generator once per call (see :meth:`reseed`): a run is
        reproducible for a given seed, number of ranks and split. Below the
        threshold the root's serial model draws, from its own streams.

        Parameters
        ----------
        split_by_modelparams : bool
            Divide the ranks' work by model (True) or by experiment (False).
        """
        repeat = as_repeat(repeat)
        modelparams, expparams = self._arrays(modelparams, expparams)
        self._sim_count += len(modelparams) * len(expparams) * repeat
        serial_model = self.underlying_model
        work = len(modelparams) * len(expparams) * repeat
        engine = self._random_call_engine(Command.SIMULATE, work, _SIMULATE_AUTO_THRESHOLD)
        if engine is None:
            return serial_model.simulate_experiment(modelparams, expparams, repeat=repeat)
        split = Split.MODELS if split_by_modelparams else Split.EXPERIMENTS
        outcomes = engine.call(
            Command.SIMULATE, self._model_id, split, modelparams=modelparams, expparams=expparams,
            modelparams_code=dtype_code(modelparams.dtype), repeat=repeat, seed=self._draw_seed(),
            result_code=dtype_code(_outcome_dtype(serial_model, expparams)),
        )[0]
        return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes

    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        """The serial model's score (and likelihood), computed across all ranks.

        Shape ``(n_modelparams, n_outcomes, n_models, n_expparams)``.
        """
        serial_model = self.underlying_model
        if not hasattr(serial_model, "score"):
            raise AttributeError(f"{type(serial_model).__name__} has no score(); it is not a DifferentiableModel")
        outcomes = as_outcomes(outcomes)
        modelparams, expparams = self._arrays(modelparams, expparams)
        return self._dispatch(
            Command.SCORE, modelparams, expparams,
            lambda: serial_model.score(outcomes, modelparams, expparams, return_L=return_L),
            from_answers=tuple if return_L else (lambda answers: answers[0]),
            outcomes=outcomes, outcomes_code=dtype_code(outcomes.dtype), flags=FLAG_RETURN_L if return_L else 0,
        )

    def fisher_information(self, modelparams, expparams):
        """The serial model's Fisher information, ``(n_mp, n_mp, n_models, n_expparams)``, across all ranks."""
        serial_model = self.underlying_model
        if not hasattr(serial_model, "fisher_information"):
            raise AttributeError(f"{type(serial_model).__name__} has no fisher_information()")
        modelparams, expparams = self._arrays(modelparams, expparams)
        return self._dispatch(
            Command.FISHER_INFORMATION, modelparams, expparams,
            lambda: serial_model.fisher_information(modelparams, expparams),
        )

    def update_timestep(self, modelparams, expparams):
        """The serial model's ``update_timestep``, ``(n_models, n_modelparams, n_expparams)``.

        Runs on the root unless a fixed ``serial_threshold`` sends large calls
        to every rank: the step is cheaper than moving the particles for most
        models, and a random step (qinfer's ``RandomWalkModel``) matches a
        serial run exactly only when the root draws it. In parallel, ranks
        draw from seeded streams as in :meth:`simulate_experiment`.
        """
        modelparams, expparams = self._arrays(modelparams, expparams)
        serial_model = self.underlying_model
        work = len(modelparams) * len(expparams)
        engine = self._random_call_engine(Command.UPDATE_TIMESTEP, work, auto_threshold=None)
        if engine is None:
            return serial_model.update_timestep(modelparams, expparams)
        split = self._choose_split(len(modelparams), len(expparams))
        return engine.call(
            Command.UPDATE_TIMESTEP, self._model_id, split, modelparams=modelparams, expparams=expparams,
            modelparams_code=dtype_code(modelparams.dtype), seed=self._draw_seed(),
        )[0]

    def are_models_valid(self, modelparams):
        """The serial model's ``are_models_valid``, one bool per model."""
        modelparams, _ = self._arrays(modelparams)
        return self._dispatch(
            Command.ARE_MODELS_VALID, modelparams, None,
            lambda: self.underlying_model.are_models_valid(modelparams),
        )

    def clear_cache(self) -> None:
        """Clear the serial model's cache on every rank."""
        engine = self._engine
        if engine is None or engine.size == 1:
            self.underlying_model.clear_cache()
            return
        self._parallel_engine(Command.CLEAR_CACHE, 0)  # checks that we are the live root
        engine.call(Command.CLEAR_CACHE, self._model_id)

    def sync_model(self) -> None:
        """Send the root's serial model to every worker, replacing theirs (pickled once).

        Needed after the root changed its serial model's state on purpose
        (a parameter, a calibration) that the likelihood depends on.
        """
        engine = self._live_engine()
        self._parallel_engine(Command.SYNC_MODEL, 0)
        engine.sync_model(self._model_id, self.underlying_model)
        self._expparams_dtype = np.dtype(self.underlying_model.expparams_dtype)
        self._policy = ThresholdPolicy(self._policy.threshold, self._policy.reprobe)


#: In "auto" threshold mode, simulations go parallel from this many draws:
#: a fixed rule, because which path runs decides the random streams used.
_SIMULATE_AUTO_THRESHOLD = 100_000


def _outcome_dtype(serial_model, expparams) -> np.dtype:
    try:
        domain = serial_model.domain(expparams[:1])
        if isinstance(domain, (list, tuple)):
            domain = domain[0]
        dtype = np.dtype(domain.dtype)
        dtype_code(dtype)
        return dtype
    except Exception:  # noqa: BLE001 - a model without a usable domain: qinfer's default
        return np.dtype(np.int64)
