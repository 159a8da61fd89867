"""A pytest plugin that runs qinfer's concrete-model tests against the MPI proxy.

Loaded by ``scripts/qinfer_suite.py`` with ``-p qinfer_suite_plugin``; it
does two jobs:

* ``--qsuite-report FILE``: write one JSON line per finished test (node id,
  class, verdict, failure text), on the root only, as each test ends, so a job
  killed by its timeout still says how far it got;
* ``--qsuite-proxy``: run under ``mpiexec``, with every model a test class
  instantiates wrapped in ``MPIParallelizedModel(model, serial_threshold=...)``.

How the proxy mode keeps the ranks in step
------------------------------------------
Every rank collects the same tests in the same order. qinfer's test classes
build their model through one hook, ``instantiate_model``, called lazily the
first time a test touches ``self.model``; this plugin wraps that hook so it
returns the proxy (a collective construction).

* On the root the tests run as written. ``tearDown`` is wrapped: it shuts the
  proxy down, which releases the workers; a test that never touched its model
  builds the proxy there first, so that the workers, waiting in the
  construction, are released all the same.
* On the workers each test method of such a class is replaced by "build the
  proxy, serve until the root shuts it down". ``setUp`` (qinfer's
  ``np.random.seed(0)``) still runs first, so a model whose construction draws
  random numbers is built identically on every rank. Test methods of other
  classes do nothing on the workers: only the root runs test bodies.
"""

from __future__ import annotations

import json
import os
import unittest

import pytest

_PATCHED = "_qsuite_patched"


def pytest_addoption(parser):
    group = parser.getgroup("qinfer-suite", "qinfer concrete-model suite through the MPI proxy")
    group.addoption("--qsuite-report", default=None, help="file to append one JSON line per finished test to")
    group.addoption("--qsuite-proxy", action="store_true", help="wrap every instantiated model in the MPI proxy")
    group.addoption("--qsuite-threshold", default="0",
                    help="serial_threshold of the proxies: an integer or 'auto' (default 0: always parallel)")
    group.addoption("--qsuite-skip-class", action="append", default=[],
                    help="deselect every test of this class (repeatable)")


def _threshold(text: str):
    return text if text == "auto" else int(text)


class _Suite:
    """The plugin's state for one pytest run on one rank."""

    def __init__(self, config):
        self.report_path = config.getoption("--qsuite-report")
        self.proxy = config.getoption("--qsuite-proxy")
        self.threshold = _threshold(config.getoption("--qsuite-threshold"))
        self.skip_classes = set(config.getoption("--qsuite-skip-class"))
        self.rank, self.size = 0, 1
        if self.proxy:
            from mpi4py import MPI

            self.rank, self.size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
        self.is_root = self.rank == 0
        if self.report_path and self.is_root:
            open(self.report_path, "w").close()  # a fresh report per run

    # ------------------------------------------------------------ collection
    def pytest_pycollect_makeitem(self, collector, name, obj):
        # Each test class passes here before its methods are collected: patched now,
        # the methods pytest collects (and binds to each test's instance) are already ours.
        if not self.proxy or not isinstance(obj, type) or not issubclass(obj, unittest.TestCase):
            return None
        if obj.__name__ in self.skip_classes or obj.__dict__.get(_PATCHED):
            return None
        has_model = hasattr(obj, "instantiate_model")
        if has_model:
            self._patch_model_class(obj)
        else:
            setattr(obj, _PATCHED, True)
        if not self.is_root:
            for method in unittest.TestLoader().getTestCaseNames(obj):
                setattr(obj, method, _serve_instead if has_model else _nothing_instead)
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        kept, dropped = [], []
        for item in items:
            (dropped if _class_name(item) in self.skip_classes else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    def _patch_model_class(self, cls) -> None:
        setattr(cls, _PATCHED, True)
        build_serial = cls.instantiate_model
        tear_down = cls.tearDown
        threshold = self.threshold

        def instantiate_model(test):
            # The proxy construction is collective: each test attempts it at most once,
            # so a failure cannot leave the ranks one construction apart.
            failure = test.__dict__.get("_qsuite_failure")
            if failure is not None:
                raise failure
            test._qsuite_attempted = True
            try:
                from mpi_qinfer import MPIParallelizedModel

                proxy = MPIParallelizedModel(build_serial(test), serial_threshold=threshold)
            except BaseException as error:
                test._qsuite_failure = error
                raise
            test._qsuite_proxy = proxy
            return proxy

        def tearDown(test):  # noqa: N802 - unittest's name
            try:
                tear_down(test)
            finally:
                if not test.__dict__.get("_qsuite_attempted"):
                    try:  # the workers wait in the construction: build, to release them
                        test.model  # noqa: B018 - the property builds the proxy
                    except BaseException:  # noqa: BLE001 - failed on every rank alike
                        pass
                proxy = test.__dict__.get("_qsuite_proxy")
                if proxy is not None:
                    proxy.shutdown()

        cls.instantiate_model = instantiate_model
        if self.is_root:
            cls.tearDown = tearDown

    # ------------------------------------------------------------- reporting
    def pytest_runtest_logreport(self, report):
        if not (self.report_path and self.is_root):
            return
        if report.when == "call" or not report.passed:  # a test's verdict, or a setup/teardown problem
            self._write(report)

    def _write(self, report) -> None:
        verdict = report.outcome
        if report.failed and report.when != "call":
            verdict = "error"
        crash = getattr(report.longrepr, "reprcrash", None)
        if report.skipped and isinstance(report.longrepr, tuple):
            message = report.longrepr[2]
        elif crash is not None:
            message = crash.message
        else:
            message = str(report.longrepr or "")
        record = {
            "nodeid": report.nodeid,
            "cls": report.nodeid.split("::")[-2] if report.nodeid.count("::") >= 2 else "",
            "test": report.nodeid.split("::")[-1],
            "when": report.when,
            "verdict": verdict,
            "message": message if verdict != "passed" else "",
            "text": report.longreprtext if report.failed else "",
        }
        with open(self.report_path, "a") as stream:
            stream.write(json.dumps(record) + "\n")


def _class_name(item) -> str:
    cls = getattr(item, "cls", None)
    return cls.__name__ if cls is not None else ""


def _serve_instead(test):
    """A worker's test: build the proxy with the root, serve its calls until it shuts down."""
    test.model.serve()


def _nothing_instead(test):
    """A worker's test of a class without a model: the root runs it alone."""


def pytest_configure(config):
    suite = _Suite(config)
    config.pluginmanager.register(suite, "qinfer-suite-state")
    if suite.proxy and not suite.is_root and not os.environ.get("QSUITE_WORKER_OUTPUT"):
        # The workers' reports say nothing (their tests only serve): keep the job's output readable.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)
