"""MPIParallelizedModel: the root-side proxy that spreads a serial model's calls over MPI ranks.

Serial or parallel is decided by the call's :class:`~mpi_qinfer.parallel.routes.Route`,
which asks the threshold policy and describes the parallel call. There are two
ways in. A ``likelihood`` call on plain arrays takes the route the proxy keeps
for its shapes (made on the shapes' first call): a size class settled on serial
goes straight to the serial model, any other call is the route's to decide.
Every other call, and a likelihood call of arrays the kept route cannot take
(strided ones, say), goes through :meth:`MPIParallelizedModel._run`, which
checks whether the arrays can travel at all, makes the call's route and draws
the seed of a random call. A call that runs serially is the serial model's
own call with the caller's own arguments, so on that path the proxy returns
and raises exactly what the serial model does; the parallel path returns the
same answer bitwise and re-raises the serial model's own exceptions.
"""

from __future__ import annotations

import inspect
import operator
import sys
import time
import warnings

import numpy as np

from ..engine.core import Engine
from ..engine.operations import rank_seed_sequence, seeded
from ..engine.protocol import CallSpec, Command, Split
from ..engine.validation import transportable
from ..errors import EngineClosedError
from ..models.base import DerivedModel, DifferentiableModel
from .balance import make_balance
from .routes import MAX_ROUTES, Route, fixed_class
from .threshold import ThresholdPolicy

__all__ = ["MPIParallelizedModel", "DifferentiableMPIParallelizedModel"]

_SPLITS = {"auto": None, "models": Split.MODELS, "experiments": Split.EXPERIMENTS}
# Plain ints for the hot path: attribute access on an Enum class is slow in Python 3.11.
_LIKELIHOOD, _SIMULATE, _SCORE = int(Command.LIKELIHOOD), int(Command.SIMULATE), int(Command.SCORE)
_FISHER, _TIMESTEP = int(Command.FISHER_INFORMATION), int(Command.UPDATE_TIMESTEP)
_VALID, _CLEAR = int(Command.ARE_MODELS_VALID), int(Command.CLEAR_CACHE)
_BY_MODELS, _BY_EXPERIMENTS = int(Split.MODELS), int(Split.EXPERIMENTS)
_NDARRAY = np.ndarray

#: The answer of a parallel call of most commands: its first gathered answer.
_first = operator.itemgetter(0)


def _is_differentiable(model) -> bool:
    """Whether ``model`` is a DifferentiableModel: ours, qinfer's, or any class of that name."""
    return isinstance(model, DifferentiableModel) or any(
        klass.__name__ == "DifferentiableModel" for klass in type(model).__mro__
    )


class MPIParallelizedModel(DerivedModel):
    """A qinfer-style model whose heavy calls run on every rank of an MPI communicator.

    Construction is collective: every rank of ``comm`` builds its own serial
    model and passes it in (nothing is pickled). The root then uses the proxy
    exactly like the serial model; the other ranks serve, either inside
    ``with`` or in :meth:`serve`.

    The proxy changes speed and nothing else: it accepts what the serial
    model accepts and returns bitwise what it returns, and a failure of the
    serial model raises the model's own exception on every path (see
    :doc:`/migration`). Attributes and methods it does not define itself are
    the serial model's. Wrapping a differentiable model gives a
    :class:`DifferentiableMPIParallelizedModel`.

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
        runs in parallel. ``None`` (qinfer's spelling of the default) is
        accepted as ``"auto"`` with a :class:`DeprecationWarning`.
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
        Seeds the proxy's own generator, which draws one seed per random call
        (:meth:`simulate_experiment`, :meth:`update_timestep`); see
        :meth:`reseed`. With a seed, random calls are reproducible for a
        given seed, number of ranks and split, on one rank as on many. Never
        the global ``np.random`` stream, which stays the user's.
    idle, backoff_max
        How idle workers wait; see :class:`~mpi_qinfer.engine.core.Engine`.
    purge_client : bool, optional
        qinfer's ``DirectViewParallelizedModel`` argument; it has no meaning
        here (there is no client-side cache) and is ignored with a
        :class:`DeprecationWarning`.

    Examples
    --------
    Every rank runs the same script::

        with MPIParallelizedModel(SimplePrecessionModel()) as model:
            if model.is_root:
                updater = SMCUpdater(model, 10_000, UniformDistribution([0, 1]))
                ...
    """

    def __new__(cls, serial_model=None, *args, **kwargs):
        # MPIParallelizedModel(differentiable) -> the differentiable proxy, so that
        # isinstance checks (qinfer's BCRB updater) see what the serial model is.
        if cls is MPIParallelizedModel and serial_model is not None and _is_differentiable(serial_model):
            cls = DifferentiableMPIParallelizedModel
        return super().__new__(cls)

    def __init__(self, serial_model, comm=None, root: int = 0, serial_threshold="auto", *,
                 split: str = "auto", balance="even", engine: Engine | None = None,
                 seed=None, idle: str | None = None, backoff_max: float | None = None,
                 purge_client=None):
        if serial_threshold is None:
            _warn_at_caller("serial_threshold=None is qinfer's spelling of the default; use 'auto'")
            serial_threshold = "auto"
        if purge_client is not None:
            _warn_at_caller("purge_client has no meaning for an MPI proxy (nothing is cached on the client) "
                            "and is ignored")
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
        if "qinfer" in sys.modules:  # the user works with qinfer: pass its isinstance checks
            from ..models.interop import register_with_qinfer

            register_with_qinfer()
        self._policy = ThresholdPolicy(serial_threshold)
        self._routes: dict[tuple, Route] = {}  # likelihood call shapes seen, and what was decided
        # A likelihood that draws random numbers (a poisoned model) matches the serial model's only
        # where the serial model itself draws: such calls stay on the root.
        self._likelihood_on_root = _random_likelihood(serial_model)
        self._seeded = seed is not None
        self._seeds = np.random.default_rng(seed)
        super().__init__(serial_model)
        self._split = _SPLITS[split]
        self._owns_engine = engine is None
        if engine is None:
            engine = Engine(comm, root, idle=idle, backoff_max=backoff_max)
        self._engine = engine
        self._is_root = engine.is_root
        self._alone = engine.size == 1  # every call runs serially on this rank
        try:
            self._balance = make_balance(balance, engine.size)
            self._model_id = engine.register(serial_model)
            if engine.recovery is not None and engine.is_root:  # recovery hook: follow the engine onto the ranks left
                engine.recovery.follow(self._ranks_left)
        except BaseException:
            if self._owns_engine:
                engine.close_collectively()
            raise

    @classmethod
    def spawn(cls, serial_model, n_workers: int | None = None, *, timeout: float | None = None, python_exe=None,
              python_args=None, mpi_info=None, path=None, wdir=None, env=None, idle: str | None = None,
              backoff_max: float | None = None, **options):
        """A proxy on workers this process starts itself: a notebook's, IPython's or a script's, no ``mpiexec``.

        The workers start with ``MPI_Comm_spawn`` and get ``serial_model``
        pickled, once; from then on the proxy is the one built under
        ``mpiexec`` (bitwise the serial model's answers and exceptions), with
        this process as its root. ``shutdown()``, leaving ``with``, and the
        interpreter's exit (a notebook kernel's shutdown or restart) stop
        every worker. See :doc:`/notebooks`.

        Parameters
        ----------
        serial_model : Model
            The model; its class must be importable by the workers (defined in
            a module, not in a notebook cell).
        n_workers : int, optional
            Processes to start besides this one, which computes too. Default:
            the cores this process may use, minus one, at least one.
        timeout : float, optional
            Seconds starting may take (default ``MPI_QINFER_SPAWN_TIMEOUT``, else 60).
        python_exe, python_args, mpi_info, path, wdir, env
            As for :class:`mpi4py.futures.MPIPoolExecutor`: the workers' Python
            and its options, ``MPI_Info`` keys of the spawn, entries added to
            the workers' ``sys.path`` (which starts as this process's), their
            working directory (this process's by default) and environment.
        idle, backoff_max
            How idle workers wait; see :class:`~mpi_qinfer.engine.core.Engine`.
        **options
            The proxy's own keywords (``serial_threshold``, ``split``, ``balance``, ``seed``, ...).

        Returns
        -------
        MPIParallelizedModel
            The root's proxy; its :attr:`engine` is a
            :class:`~mpi_qinfer.engine.spawn.SpawnedEngine`.

        Raises
        ------
        SpawnError
            Within ``timeout``, when the workers cannot be started here
            (the message names the ``mpiexec`` alternative), or the model
            cannot reach them.

        Examples
        --------
        ::

            with MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=3) as model:
                updater = SMCUpdater(model, 20_000, prior)
                ...
        """
        taken = {"comm", "root", "engine"} & set(options)
        if taken:
            raise TypeError(f"spawn() makes its own engine; it takes no {', '.join(sorted(taken))}")
        from ..engine.spawn import spawn_engine

        engine = spawn_engine(n_workers, timeout=timeout, python_exe=python_exe, python_args=python_args,
                              mpi_info=mpi_info, path=path, wdir=wdir, env=env, idle=idle, backoff_max=backoff_max)
        try:
            proxy = cls(serial_model, engine=engine, **options)
        except BaseException:
            engine.shutdown()
            raise
        proxy._owns_engine = True
        engine.stop_with(proxy)
        return proxy

    def __getattr__(self, name):
        # Only reached for names the proxy lacks: the serial model's own
        # attributes and methods (a random-walk model's est_update_covariance, ...).
        if name.startswith("__") or name == "_underlying_model":
            raise AttributeError(name)
        try:
            under = self.__dict__["_underlying_model"]
        except KeyError:
            raise AttributeError(name) from None
        return getattr(under, name)

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
        """The load-balancing policy (see :mod:`mpi_qinfer.parallel.balance`)."""
        return self._balance

    @property
    def threshold_policy(self) -> ThresholdPolicy:
        """The object deciding serial versus parallel, with what it has learned."""
        return self._policy

    def reseed(self, seed) -> None:
        """Restart the generator of per-call seeds: the next random calls repeat.

        With the same seed, number of ranks and split, :meth:`simulate_experiment`
        returns the same draws.
        """
        self._seeded = True
        self._seeds = np.random.default_rng(seed)

    def _ranks_left(self, survivors: list) -> None:
        """After lost ranks (engine/recovery.py): split over ``survivors``, their ranks before the loss."""
        self._alone = self._engine.size == 1
        self._balance = self._balance.for_ranks(survivors)

    def _draw_seed(self) -> int:
        return int(self._seeds.integers(0, 2**63 - 1))

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        self._live_engine().__enter__()
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
        state.update(_engine=None, _owns_engine=False, _alone=True, _is_root=True, _routes={},
                     _call_count=self.call_count)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def _live_engine(self) -> Engine:
        if self._engine is None:
            raise EngineClosedError("this proxy was unpickled or copied and has no MPI engine; it runs serially")
        return self._engine

    def _live_root_engine(self) -> Engine | None:
        """The engine, checked to be open and on the root; None for an unpickled proxy."""
        engine = self._engine
        if engine is None:
            return None
        if not self._is_root:
            raise RuntimeError(
                f"rank {engine.rank} called a model method of the proxy, but only the root (rank {engine.root}) "
                "makes calls while the other ranks serve: guard the inference code with `if model.is_root:`"
            )
        if engine.closed:
            raise EngineClosedError("the proxy has been shut down; no more parallel calls can be made")
        return engine

    # ------------------------------------------------------ the general path
    def _run(self, command: int, serial, modelparams, expparams=None, outcomes=None, *, repeat=None,
             return_likelihood: bool = False, random: bool = False, answer_hint=None, split: int | None = None,
             asked: bool = False, unpack=_first):
        """Run one model call, ``serial()`` on the root or ``command`` on every rank; return its answer.

        ``serial`` calls the serial model with the caller's own arguments, so
        the serial path is exactly the serial model, and its value is the
        answer. The parallel path needs arrays that can travel (see
        :func:`~mpi_qinfer.engine.validation.transportable`); anything else
        runs serially, where the serial model accepts or rejects it as it
        would without the proxy. For arrays that can travel, the call's
        :class:`~mpi_qinfer.parallel.routes.Route` decides, and ``unpack``
        makes the answer of the gathered answers (by default the first).
        ``asked``: the caller's kept route found its size class not settled
        on serial already (that question counts toward the next re-check).
        """
        engine = self._live_root_engine()
        if engine is None or self._alone or (command == _LIKELIHOOD and self._likelihood_on_root):
            return self._serially(serial, random)
        # The common case first, in a few attribute reads: a settled serial size class
        # (unless the caller asked already: the question counts toward the next re-check).
        policy = self._policy
        if not random and not asked and type(modelparams) is _NDARRAY and modelparams.ndim == 2 and (
                expparams is None or (type(expparams) is _NDARRAY and expparams.ndim == 1)):
            n_models, n_exp = len(modelparams), 1 if expparams is None else len(expparams)
            split_axis = split if split is not None else self._choose_split(n_models, n_exp, expparams)
            values = _answer_values(command, outcomes, modelparams.shape[1])
            if policy.settled_serial(command, n_models * n_exp, values, split_axis):
                return serial()
        arrays = transportable(self._underlying_model, modelparams, expparams, outcomes, repeat)
        if arrays is None:  # cannot travel: the serial model decides what it means
            return self._serially(serial, random)
        modelparams, expparams, outcomes = arrays
        n_models = len(modelparams)
        n_exp = 1 if expparams is None else len(expparams)
        repeat = 0 if repeat is None else int(repeat)
        work = n_models * n_exp * max(repeat, 1)
        if work == 0:
            return self._serially(serial, random)
        if split is None:
            split = self._choose_split(n_models, n_exp, expparams)
        values = _answer_values(command, outcomes, modelparams.shape[1])
        size = None if random else policy.size_class(command, work, values, split)
        # (By position: keyword arguments cost more than the rest of the construction.)
        route = Route(engine, self._underlying_model, policy, command, 0, size, False, work, values, split,
                      n_models if split == _BY_MODELS else n_exp)
        if not route.parallel():
            return self._serially(serial, random) if random else self._timed_serially(serial, route)
        counts = self._balance.counts(route.n_rows)
        spec = route.describe(self._model_id, outcomes, modelparams, expparams, counts is not None, repeat=repeat,
                              return_likelihood=return_likelihood, seed=self._draw_seed() if random else 0,
                              answer_hint=answer_hint)
        arrays = {"outcomes": outcomes, "modelparams": modelparams, "expparams": expparams, "counts": counts}
        return unpack(self._parallel(route, spec, arrays))

    def _timed_serially(self, serial, route: Route):
        """The serial model's own call, timed for a learning policy."""
        policy = self._policy
        if not policy.learns:
            return serial()
        start = time.perf_counter()
        result = serial()
        policy.record_class(route.size, route.work, False, time.perf_counter() - start)
        return result

    def _parallel(self, route: Route, spec: CallSpec, arrays: dict) -> list:
        """The call on every rank; what it cost goes to the policy (the route's size class) and the balance."""
        engine, work, n_rows = route.engine, route.work, route.n_rows
        learns = route.size is not None and self._policy.learns
        start = time.perf_counter() if learns else 0.0
        answers = engine.call(spec, arrays)
        if learns:
            elapsed = time.perf_counter() - start
            root_rows, root_seconds = engine.root_share
            estimate = root_seconds * n_rows / root_rows if root_rows else None
            self._policy.record_class(route.size, work, True, elapsed, estimate)
        if self._balance.learns:
            self._balance.record(engine.last_counts, work // n_rows, engine.compute_seconds)
        return answers

    def _serially(self, serial, random: bool):
        """The serial model's own call; a random one on the proxy's seeded stream when it has a seed."""
        if random and self._seeded:
            with seeded(self._underlying_model, rank_seed_sequence(self._draw_seed(), 0)):
                return serial()
        return serial()

    def _choose_split(self, n_models: int, n_exp: int, expparams) -> int:
        if expparams is None:
            return _BY_MODELS  # nothing else to split
        if self._split is not None:
            return self._split
        return _BY_MODELS if n_models >= n_exp else _BY_EXPERIMENTS

    # --------------------------------------------------------- model calls
    def likelihood(self, outcomes, modelparams, expparams):
        """Likelihoods of ``outcomes``, shape ``(n_outcomes, n_models, n_expparams)``.

        Bitwise the serial model's answer, computed across all ranks; on the
        root alone for a model whose likelihood draws random numbers
        (:class:`~mpi_qinfer.models.derived.PoisonedModel`, also qinfer's, or
        a model that decorates one), so that the answer is the serial
        model's own draw.
        """
        # The hot path of SMC updates and experiment design: the route of this call shape
        # (mpi_qinfer.parallel.routes), in as few steps as Python allows, so that a settled
        # serial call costs what the serial model costs. Routes are kept only on the root
        # of an open engine.
        route = None
        if type(modelparams) is _NDARRAY and type(expparams) is _NDARRAY and type(outcomes) is _NDARRAY:
            route = self._routes.get((modelparams.shape, expparams.shape, outcomes.shape)) or self._new_route(
                outcomes, modelparams, expparams)
        if route is None or route.engine.closed:  # the general path counts, checks and decides
            self._call_count += _evaluations(modelparams, expparams, np.size(outcomes))
            under = self._underlying_model
            return self._run(_LIKELIHOOD, lambda: under.likelihood(outcomes, modelparams, expparams),
                             modelparams, expparams, outcomes)
        route.calls += 1
        if route.size.take_settled_serial():  # a settled serial class: the serial model, untimed
            return route.model.likelihood(outcomes, modelparams, expparams)
        return self._likelihood_on_route(route, outcomes, modelparams, expparams)

    def _new_route(self, outcomes, modelparams, expparams) -> Route | None:
        """The :class:`~mpi_qinfer.parallel.routes.Route` of a likelihood call on arrays of these shapes, kept.

        None where no route is kept: on a worker, without an engine, or once the engine is closed.
        """
        engine = self._engine
        if not self._is_root or engine is None or engine.closed:
            return None
        under, policy = self._underlying_model, self._policy
        evaluations = _evaluations(modelparams, expparams, outcomes.size)
        if modelparams.ndim != 2 or expparams.ndim != 1 or outcomes.ndim > 1:
            # the general path decides
            route = Route(engine, under, policy, _LIKELIHOOD, evaluations, fixed_class(False))
        elif self._alone or self._likelihood_on_root or len(modelparams) * len(expparams) == 0:
            # the general path would run it serially
            route = Route(engine, under, policy, _LIKELIHOOD, evaluations, fixed_class(True))
        else:
            n_models, n_exp = len(modelparams), len(expparams)
            split = self._choose_split(n_models, n_exp, expparams)
            work, values = n_models * n_exp, outcomes.size
            route = Route(engine, under, policy, _LIKELIHOOD, evaluations,
                          policy.size_class(_LIKELIHOOD, work, values, split), direct=True, work=work, values=values,
                          split=split, n_rows=n_models if split == _BY_MODELS else n_exp)
        if len(self._routes) >= MAX_ROUTES:
            self._drop_routes()
        self._routes[modelparams.shape, expparams.shape, outcomes.shape] = route
        return route

    def _drop_routes(self) -> None:
        """Forget every route, keeping the calls they counted."""
        self._call_count = self.call_count
        self._routes.clear()

    @property
    def call_count(self) -> int:
        """Likelihood evaluations asked of this proxy (``n_outcomes * n_models * n_expparams`` per call)."""
        return self._call_count + sum(route.calls * route.evaluations for route in self._routes.values())

    def _likelihood_on_route(self, route: Route, outcomes, modelparams, expparams):
        """A likelihood call of a kept route that is not settled serial: the route decides and describes the call."""
        under = route.model
        if not (route.direct and modelparams.flags.c_contiguous and expparams.flags.c_contiguous
                and outcomes.flags.c_contiguous):
            # The general path, which copies such arrays; the size class was asked already.
            return self._run(_LIKELIHOOD, lambda: under.likelihood(outcomes, modelparams, expparams),
                             modelparams, expparams, outcomes, asked=True)
        if not route.travels_with(outcomes, modelparams, expparams):  # the serial model decides what they mean
            return under.likelihood(outcomes, modelparams, expparams)
        if not route.parallel():
            return self._timed_serially(lambda: under.likelihood(outcomes, modelparams, expparams), route)
        counts = self._balance.counts(route.n_rows)
        spec = route.kept_spec(self._model_id, outcomes, modelparams, expparams, counts is not None)
        arrays = {"outcomes": outcomes, "modelparams": modelparams, "expparams": expparams, "counts": counts}
        return self._parallel(route, spec, arrays)[0]

    def simulate_experiment(self, modelparams, expparams, repeat: int = 1, split_by_modelparams: bool = True):
        """Simulated outcomes, shape ``(repeat, n_models, n_expparams)`` (a scalar if one element).

        In parallel, rank ``r`` draws from a stream seeded by
        ``SeedSequence(seed, spawn_key=(r,))``, where ``seed`` comes from the
        proxy's own generator once per call (see :meth:`reseed`): a run is
        reproducible for a given seed, number of ranks and split. Below the
        threshold the root's serial model draws: from its own streams, or,
        when the proxy has a seed, from rank 0's stream of the call.

        Parameters
        ----------
        split_by_modelparams : bool
            Divide the ranks' work by model (True) or by experiment (False).
        """
        under = self._underlying_model
        self._sim_count += _evaluations(modelparams, expparams, repeat)
        return self._run(_SIMULATE, lambda: under.simulate_experiment(modelparams, expparams, repeat=repeat),
                         modelparams, expparams, repeat=repeat, random=True,
                         answer_hint=_outcome_dtype(under, expparams),
                         split=_BY_MODELS if split_by_modelparams else _BY_EXPERIMENTS, unpack=_simulated)

    def score(self, outcomes, modelparams, expparams, return_L: bool = False):
        """The serial model's score (and likelihood), computed across all ranks.

        Shape ``(n_modelparams, n_outcomes, n_models, n_expparams)``.
        """
        under = self._underlying_model
        if not hasattr(under, "score"):
            raise AttributeError(f"{type(under).__name__} has no score(); it is not a DifferentiableModel")
        return self._run(_SCORE, lambda: under.score(outcomes, modelparams, expparams, return_L=return_L),
                         modelparams, expparams, outcomes, return_likelihood=return_L,
                         unpack=tuple if return_L else _first)

    def fisher_information(self, modelparams, expparams):
        """The serial model's Fisher information, ``(n_mp, n_mp, n_models, n_expparams)``, across all ranks."""
        under = self._underlying_model
        if not hasattr(under, "fisher_information"):
            raise AttributeError(f"{type(under).__name__} has no fisher_information()")
        return self._run(_FISHER, lambda: under.fisher_information(modelparams, expparams), modelparams, expparams)

    def update_timestep(self, modelparams, expparams):
        """The serial model's ``update_timestep``, ``(n_models, n_modelparams, n_expparams)``.

        Runs on the root unless a fixed ``serial_threshold`` sends large calls
        to every rank: the step is cheaper than moving the particles for most
        models, and a random step (qinfer's ``RandomWalkModel``) matches a
        serial run exactly only when the root draws it. In parallel, ranks
        draw from seeded streams as in :meth:`simulate_experiment`. A model
        that keeps the base class's static step (a copy of the particles per
        experiment) always runs it on the root.
        """
        under = self._underlying_model
        if _static_timestep(under):  # a copy of the particles: nothing to gain from the other ranks
            self._live_root_engine()
            return under.update_timestep(modelparams, expparams)
        modelparams_dtype = getattr(modelparams, "dtype", None)
        return self._run(_TIMESTEP, lambda: under.update_timestep(modelparams, expparams),
                         modelparams, expparams, random=True, answer_hint=modelparams_dtype)

    def are_models_valid(self, modelparams):
        """The serial model's ``are_models_valid``, one answer per model."""
        under = self._underlying_model
        return self._run(_VALID, lambda: under.are_models_valid(modelparams), modelparams)

    def clear_cache(self) -> None:
        """Clear the serial model's cache on every rank."""
        engine = self._live_root_engine()
        if engine is None or self._alone:
            DerivedModel.clear_cache(self)
            return
        engine.call(CallSpec(_CLEAR, self._model_id), {"counts": None})

    def sync_model(self) -> None:
        """Send the root's serial model to every worker, replacing theirs (pickled once).

        Needed after the root changed its serial model's state on purpose
        (a parameter, a calibration) that the likelihood depends on. What the
        proxy learned about the model (answer dtypes, timings) starts afresh.
        """
        engine = self._live_root_engine()
        if engine is None:
            raise EngineClosedError("this proxy was unpickled or copied and has no MPI engine; it runs serially")
        engine.sync_model(self._model_id, self._underlying_model)
        self._policy = ThresholdPolicy(self._policy.threshold, self._policy.reprobe)
        self._drop_routes()  # their size classes were the old policy's


# help(), inspect.signature and the API page show the constructor's real parameters, not those of
# the __new__ that picks the differentiable class.
MPIParallelizedModel.__signature__ = inspect.signature(MPIParallelizedModel.__init__).replace(
    parameters=list(inspect.signature(MPIParallelizedModel.__init__).parameters.values())[1:])


def _warn_at_caller(message: str, category: type[Warning] = DeprecationWarning) -> None:
    """Warn at the first frame outside this package: the user's line, however deep the constructors."""
    package = __name__.partition(".")[0] + "."
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class DifferentiableMPIParallelizedModel(MPIParallelizedModel, DifferentiableModel):
    """An :class:`MPIParallelizedModel` that is also a ``DifferentiableModel``.

    ``MPIParallelizedModel(model)`` returns one whenever ``model`` is
    differentiable, so code that checks ``isinstance(model,
    DifferentiableModel)`` (qinfer's Bayesian Cramér–Rao updater) sees the
    proxy as what the serial model is. Its ``score`` and
    ``fisher_information`` run on every rank.

    Raises
    ------
    TypeError
        If the serial model has no ``score``, on every rank.
    """

    def __init__(self, serial_model, *args, **kwargs):
        if not callable(getattr(serial_model, "score", None)):
            raise TypeError(f"{type(serial_model).__name__} has no score(); it is not differentiable")
        super().__init__(serial_model, *args, **kwargs)


def _random_likelihood(model) -> bool:
    """Whether ``model`` or a model it decorates draws random numbers in its likelihood.

    This package's models say so with a class attribute ``_random_likelihood``;
    qinfer's ``PoisonedModel`` is the one such model of qinfer.
    """
    chain = (model, *tuple(getattr(model, "model_chain", ()) or ()))
    for member in chain:
        kind = type(member)
        if getattr(kind, "_random_likelihood", False) or (
                kind.__name__ == "PoisonedModel" and kind.__module__.startswith("qinfer")):
            return True
    return False


def _static_timestep(model) -> bool:
    """Whether ``model.update_timestep`` is the base class's static step (a copy per experiment).

    Follows derived models to the model that defines the step; the base step
    of this package's and of qinfer's ``Simulatable`` both qualify. Such a step
    draws nothing and costs less than moving the particles, so the proxy runs
    it on the root whatever the threshold, with the same answer.
    """
    from ..models.base import DerivedModel, Simulatable

    for _ in range(32):  # a chain of derived models, followed to its end
        step = getattr(type(model), "update_timestep", None)
        under = getattr(model, "underlying_model", None) if step is DerivedModel.update_timestep else None
        if under is not None:
            model = under
            continue
        qualname = getattr(step, "__qualname__", "")
        return step is Simulatable.update_timestep or (
            qualname == "Simulatable.update_timestep" and getattr(step, "__module__", "").startswith("qinfer"))
    return False


def _answer_values(command: int, outcomes, n_modelparams: int) -> int:
    """Values a command's answers hold per evaluation: what a parallel call moves back, per evaluation.

    The threshold policy learns separately for each class of this count
    (see :mod:`mpi_qinfer.parallel.threshold`).
    """
    if command == _LIKELIHOOD:
        return outcomes.size if type(outcomes) is _NDARRAY else int(np.size(outcomes))
    if command == _SCORE:
        return n_modelparams * (outcomes.size if type(outcomes) is _NDARRAY else int(np.size(outcomes)))
    if command == _FISHER:
        return n_modelparams * n_modelparams
    return 1


def _simulated(answers: list):
    """The answer of a parallel ``simulate_experiment``: its outcomes, a scalar when there is one."""
    outcomes = answers[0]
    return outcomes[0, 0, 0] if outcomes.size == 1 else outcomes


def _evaluations(modelparams, expparams, factor) -> int:
    """``len(modelparams) * len(expparams) * factor`` for the call counters; 0 for input without lengths."""
    try:
        return len(modelparams) * len(expparams) * int(factor)
    except TypeError:
        return 0


def _outcome_dtype(serial_model, expparams) -> np.dtype | None:
    """The dtype the model's domain says its outcomes have (a guess; the engine checks it)."""
    try:
        domain = serial_model.domain(expparams[:1])
        if isinstance(domain, (list, tuple)):
            domain = domain[0]
        return np.dtype(domain.dtype)
    except Exception:  # noqa: BLE001 - a model without a usable domain: qinfer's default
        return np.dtype(np.int64)
