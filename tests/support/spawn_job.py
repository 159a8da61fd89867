"""Jobs for tests/jobs/test_spawn.py, run as ``python tests/support/spawn_job.py MODE`` (or under mpiexec for ``spmd``).

Each prints one JSON line starting with ``RESULT`` that the test reads. The models come from
fault_models (importable by spawned workers: they get this process's sys.path).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from fault_models import POISON, CountingModel, FailingModel  # noqa: E402

from mpi_qinfer import DistributedSMCUpdater, MPIParallelizedModel, SpawnError, UniformDistribution  # noqa: E402
from mpi_qinfer.models import SimplePrecessionModel  # noqa: E402

N_WORKERS = int(os.environ.get("SPAWN_JOB_WORKERS", "2"))
TIMEOUT = float(os.environ.get("SPAWN_JOB_TIMEOUT", "60"))


def emit(**values) -> None:
    print("RESULT " + json.dumps(values), flush=True)


def digest(array) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes() + str(array.dtype).encode() + str(array.shape).encode()).hexdigest()[:16]


def check_likelihoods(proxy, serial) -> None:
    """Every shape and split: the proxy's answer is the serial model's, bitwise."""
    rng = np.random.default_rng(7)
    outcomes = np.array([0, 1])
    for n_models, n_exp in [(1000, 1), (10_000, 1), (7, 300), (1, 1), (2, 3), (0, 4)]:
        modelparams = rng.random((n_models, 1))
        expparams = rng.random(n_exp) * 10
        want = serial.likelihood(outcomes, modelparams, expparams)
        got = proxy.likelihood(outcomes, modelparams, expparams)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), (n_models, n_exp)


def run_updater(updater, experiments: int = 8) -> str:
    """A short distributed SMC run from fixed data (root); its estimate's digest."""
    lab = SimplePrecessionModel()
    lab.rng = np.random.default_rng(2)
    try:
        for k in range(experiments):
            expparams = np.array([1.0 + k])
            updater.update(lab.simulate_experiment(np.array([[0.3]]), expparams), expparams)
        return digest(np.concatenate([updater.est_mean(), updater.est_covariance_mtx().ravel()]))
    finally:
        updater.close()


def contract(make_proxy, spmd: bool) -> dict:
    """What both launch forms must agree on (on the root), and the serial checks.

    Under SPMD launch every rank builds the distributed updater before the workers serve;
    on a spawned engine the root alone builds it (the workers build theirs from the loop).
    """
    results = {}
    serial = SimplePrecessionModel()
    proxy = make_proxy(SimplePrecessionModel(), serial_threshold=0, seed=11)
    updater = distributed_on(proxy) if spmd else None
    with proxy:
        if proxy.is_root:
            check_likelihoods(proxy, serial)
            modelparams, expparams = np.random.default_rng(3).random((500, 1)), np.linspace(0.5, 5, 3)
            score, likelihood = proxy.score(np.array([0, 1]), modelparams, expparams, return_L=True)
            want = serial.score(np.array([0, 1]), modelparams, expparams, return_L=True)
            assert np.array_equal(score, want[0]) and np.array_equal(likelihood, want[1])  # a differentiable proxy
            simulated = proxy.simulate_experiment(np.full((3000, 1), 0.4), np.array([1.0, 2.0]), repeat=3)
            results["simulate"] = digest(simulated)
            results["n_engines"] = proxy.n_engines
            results["updater"] = run_updater(updater if spmd else distributed_on(proxy))
    # The model's own exception, on the root, after the failure on a worker.
    failing = FailingModel(fail_on=(0, 1, 2))  # COMM_WORLD ranks: a spawned worker has its own world
    with make_proxy(failing, serial_threshold=0) as proxy:
        if proxy.is_root:
            try:
                proxy.likelihood(np.array([0]), np.ones((50, 1)), np.array([1.0, POISON]))
                results["exception"] = None
            except ZeroDivisionError as error:
                results["exception"] = type(error).__name__ + ("/remote" if error.__cause__ is not None else "")
            check_likelihoods(proxy, failing)  # the engine is in step after the failure
    # sync_model, the adaptive balance and the learning threshold.
    with make_proxy(CountingModel(scale=1.0), serial_threshold="auto", balance="adaptive") as proxy:
        if proxy.is_root:
            proxy.serial_model.scale = 1.5
            proxy.sync_model()
            check_likelihoods(proxy, CountingModel(scale=1.5))
            results["synced"] = True
    return results


def spawned_proxy(model, **options):
    return MPIParallelizedModel.spawn(model, n_workers=N_WORKERS, timeout=TIMEOUT, **options)


def distributed_on(proxy):
    return DistributedSMCUpdater(proxy, 3000, UniformDistribution([0, 1]), rng=5)


def main(mode: str) -> None:
    if mode == "spmd":
        from mpi4py import MPI

        results = contract(lambda model, **options: MPIParallelizedModel(model, **options), spmd=True)
        if MPI.COMM_WORLD.Get_rank() == 0:
            emit(**results)
        return
    if mode == "spawn":
        start = time.monotonic()
        pids = []

        def make(model, **options):
            proxy = spawned_proxy(model, **options)
            pids.extend(pid for pid, _ in proxy.engine.workers)
            return proxy

        results = contract(make, spmd=False)
        emit(**results, pids=pids, root=os.getpid(), seconds=time.monotonic() - start)
        return
    if mode in ("exit", "kill"):
        proxy = spawned_proxy(SimplePrecessionModel(), serial_threshold=0)
        check_likelihoods(proxy, SimplePrecessionModel())
        emit(pids=[pid for pid, _ in proxy.engine.workers], root=os.getpid())
        if mode == "kill":
            time.sleep(600)  # the test kills this process
        globals()["kept"] = proxy  # alive until the interpreter's exit, which stops the workers
        return
    if mode == "updater-only":  # a distributed updater on a proxy nobody keeps: the engine lives on with it
        updater = distributed_on(spawned_proxy(SimplePrecessionModel()))
        import gc

        gc.collect()
        emit(updater=run_updater(updater))
        return
    if mode == "drop":  # a proxy dropped without shutdown() (a notebook cell run again) stops its workers
        import gc

        from mpi_qinfer.engine.spawn import process_alive

        proxy = spawned_proxy(SimplePrecessionModel())
        pids = [pid for pid, _ in proxy.engine.workers]
        del proxy
        gc.collect()
        emit(pids=pids, root=os.getpid(), gone=not any(process_alive(pid) for pid in pids))
        return
    if mode == "main-class":
        class LocalModel(SimplePrecessionModel):  # pickled by reference to __main__, which the workers lack
            pass

        LocalModel.__module__ = "__main__"
        LocalModel.__qualname__ = "LocalModel"
        globals()["LocalModel"] = LocalModel
        try_spawn(lambda: spawned_proxy(LocalModel()))
        return
    if mode == "bad-root":  # run without the permission Open MPI needs as root
        try_spawn(lambda: spawned_proxy(SimplePrecessionModel()))
        return
    if mode == "bad-python":
        try_spawn(lambda: MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=1, timeout=TIMEOUT,
                                                     python_exe="/nonexistent/python3"))
        return
    if mode == "hang":
        # Workers whose Python runs another program first and never reaches MPI_Init.
        try_spawn(lambda: MPIParallelizedModel.spawn(SimplePrecessionModel(), n_workers=1, timeout=TIMEOUT,
                                                     python_args=["-c", "import time; time.sleep(300)"]))
        return
    raise SystemExit(f"unknown mode {mode!r}")


def try_spawn(start) -> None:
    began = time.monotonic()
    try:
        proxy = start()
    except SpawnError as error:
        emit(error=str(error), kind=type(error).__name__, seconds=time.monotonic() - began, root=os.getpid())
        return
    proxy.shutdown()
    emit(error=None, seconds=time.monotonic() - began, root=os.getpid())


if __name__ == "__main__":
    main(sys.argv[1])
