"""A pytest plugin for ``run.py``: one JSON line per test (and per failed collection) with why it failed.

Loaded with ``-p qshim_plugin --qshim-report FILE``; ``--qshim-numpy-aliases`` first gives NumPy back
the aliases qinfer's test code uses and NumPy 2 removed (``np.int``, ``np.float``, ...), to show what
passes once qinfer's own code is NumPy-2 clean. Each failure is classified by the exception that
failed the test (and the exceptions it was raised from):

* ``missing``: a placeholder for a qinfer name mpi_qinfer lacks was used (``MissingName``);
* ``numpy2``: qinfer's test code used a NumPy name that NumPy 2 removed;
* ``behaviour``: anything else: the exception's type and message, and where it was raised.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

_NUMPY_REMOVED = [re.compile(r"module 'numpy' has no attribute '(\w+)'"),
                  re.compile(r"`np\.(\w+)` was removed in the NumPy 2\.0 release")]
#: A name the stand-in's modules do not answer for (not among qinfer's public names).
_PRIVATE = re.compile(r"module '(qinfer[\w.]*)' has no attribute '(\w+)'")
#: What NumPy 2 removed and qinfer's code uses, as the aliases NumPy 1 had.
ALIASES = {"int": int, "float": float, "complex": complex, "bool": bool, "object": object, "str": str}
#: The run's configuration (the report stream hangs on it).
_CONFIG = [None]


def pytest_addoption(parser):
    group = parser.getgroup("qshim", "qinfer's tests on mpi_qinfer")
    group.addoption("--qshim-report", default=None, help="file to write one JSON line per test to")
    group.addoption("--qshim-numpy-aliases", action="store_true",
                    help="give NumPy back np.int, np.float, ... before the tests are imported")


def pytest_configure(config):
    if config.getoption("--qshim-numpy-aliases"):
        import numpy as np

        for name, value in ALIASES.items():
            if name not in np.__dict__:
                setattr(np, name, value)
    path = config.getoption("--qshim-report")
    config._qshim = open(path, "w") if path else None  # noqa: SIM115 - closed in pytest_unconfigure
    _CONFIG[0] = config


def pytest_unconfigure(config):
    stream = getattr(config, "_qshim", None)
    if stream is not None:
        stream.close()


def _chain(error):
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _numpy_name(message: str):
    for pattern in _NUMPY_REMOVED:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def classify(error, frames, tests_dir: Path) -> dict:
    """``{"kind", "detail"}`` of a failure, from its exception and its traceback's ``(path, line)`` frames."""
    for link in _chain(error):
        if type(link).__name__ == "MissingName":
            return {"kind": "missing", "detail": getattr(link, "qualname", str(link))}
    for link in _chain(error):
        name = _numpy_name(str(link))
        if name and isinstance(link, AttributeError):
            # The frame that asked NumPy for the name: the last one outside NumPy itself.
            users = [path for path, _ in frames if f"{os.sep}numpy{os.sep}" not in path]
            in_tests = bool(users) and Path(users[-1]).resolve().is_relative_to(tests_dir)
            return {"kind": "numpy2" if in_tests else "behaviour",
                    "detail": f"np.{name}" if in_tests else f"np.{name} used outside qinfer's tests"}
        match = _PRIVATE.search(str(link))
        if match and isinstance(link, AttributeError):
            return {"kind": "missing", "detail": f"{match.group(1)}.{match.group(2)} (not a public name of qinfer)"}
    where = ""
    if frames:
        path, line = frames[-1]
        where = f" at {Path(path).name}:{line}"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = re.sub(r" at 0x[0-9a-f]+", "", message)  # object addresses would split one reason in many
    return {"kind": "behaviour", "detail": f"{type(error).__name__}: {message[:200]}{where}"}


def classify_text(text: str) -> dict:
    """The same from a failure's text only (a failed collection)."""
    match = re.search(r"missing name (\S+)", text)
    if match:
        return {"kind": "missing", "detail": match.group(1)}
    match = _PRIVATE.search(text)
    if match:
        return {"kind": "missing", "detail": f"{match.group(1)}.{match.group(2)} (not a public name of qinfer)"}
    name = _numpy_name(text)
    if name:
        return {"kind": "numpy2", "detail": f"np.{name}"}
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    return {"kind": "behaviour", "detail": (lines[-1][1:].strip() if lines else text.strip()[-200:])[:200]}


def _write(config, record: dict) -> None:
    stream = getattr(config, "_qshim", None)
    if stream is not None:
        stream.write(json.dumps(record) + "\n")
        stream.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        tests_dir = Path(str(item.fspath)).resolve().parent
        frames = [(str(entry.path), entry.lineno + 1) for entry in call.excinfo.traceback]
        report.user_properties.append(("qshim", classify(call.excinfo.value, frames, tests_dir)))


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        verdict = "failed" if report.failed else report.outcome
        why = dict(report.user_properties).get("qshim")
        if report.skipped:
            longrepr = report.longrepr
            why = {"kind": "skipped", "detail": longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)}
        _write(_CONFIG[0], {"nodeid": report.nodeid, "when": report.when, "verdict": verdict, "why": why})


def pytest_collectreport(report):
    if report.failed:
        _write(_CONFIG[0], {"nodeid": report.nodeid, "when": "collect", "verdict": "error",
                            "why": classify_text(report.longreprtext)})

