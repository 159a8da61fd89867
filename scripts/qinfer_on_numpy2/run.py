"""Run qinfer's own test files on NumPy 2 against mpi_qinfer, through a stand-in ``qinfer`` package.

    python scripts/qinfer_on_numpy2/run.py CHECKOUT [--files test_smc ...] [--numpy-aliases]
                                                   [--workdir DIR] [--report FILE.md]

CHECKOUT is a directory holding qinfer's source, ``src/qinfer`` with its ``tests`` (qinfer's source
repository; its tests are not on PyPI). For instance, from a bare git mirror::

    mkdir /tmp/qinfer && git --git-dir=PATH/TO/python-qinfer.git archive HEAD | tar -x -C /tmp/qinfer

Nothing is fetched. The Python that runs this script runs the tests (it needs NumPy 2, SciPy,
pytest and ``future``, which qinfer's test code imports); mpi_qinfer is taken from this repository.
In a work directory it puts the stand-in ``qinfer`` package (``qinfer/`` beside this script: every
qinfer name forwarded to mpi_qinfer's, or a placeholder that fails the test that uses it), a copy
of the checkout's ``tests`` package inside it (its ``__init__.py``, which imports three test
modules for convenience, left empty: one module failing at import would fail every file), and
the list of qinfer's public names with the module of qinfer defining each (from
``scripts/list_qinfer_names.py``). Then it runs each test file with pytest and reports per file
the tests, how many passed, failed and were skipped, and why each failure remains: a name
mpi_qinfer lacks (``missing``), qinfer's own test code using what NumPy 2 removed (``numpy2``),
or anything else (``behaviour``: the exception and where it was raised). ``--numpy-aliases``
gives NumPy back ``np.int``, ``np.float``, ... for the run, to show what passes once qinfer's
test code is NumPy-2 clean. Exit status 0 when it ran (whatever the verdicts), 2 when it could not.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: qinfer's test files run by default (its concrete-model, distribution, SMC, region, model, domain, utility
#: and precession-model tests).
DEFAULT_FILES = ["test_concrete_models", "test_distributions", "test_smc", "test_region_estimates",
                 "test_abstract_model", "test_domains", "test_utils", "test_precession_model"]
_SEVERITY = {"error": 0, "failed": 1, "skipped": 2, "passed": 3}


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of qinfer's source (holds src/qinfer/tests)")
    parser.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="test files to run (default: %(default)s)")
    parser.add_argument("--numpy-aliases", action="store_true", help="give NumPy back np.int, np.float, ...")
    parser.add_argument("--workdir", type=Path, default=None, help="where the package and reports go (a temp dir)")
    parser.add_argument("--report", type=Path, default=None, help="also write the report (Markdown) here")
    parser.add_argument("--timeout", type=int, default=900, help="seconds each file may run (default 900)")
    return parser.parse_args(argv)


def _names(checkout: Path) -> dict:
    """qinfer's public names by defining module and by the module users reach them through."""
    spec = importlib.util.spec_from_file_location("list_qinfer_names", REPO / "scripts" / "list_qinfer_names.py")
    lister = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lister)
    defined, reached = OrderedDict(), OrderedDict()
    for module, where, name in lister.definitions(checkout):
        defined.setdefault(module, []).append(name)
        if name not in reached.setdefault(where, []):
            reached[where].append(name)
    return {"defined": defined, "reached": reached}


def prepare(checkout: Path, workdir: Path) -> Path:
    """The work directory's ``qinfer`` package: the stand-in, qinfer's tests and the names; returns its tests."""
    tests = checkout / "src" / "qinfer" / "tests"
    if not (tests / "base_test.py").is_file():
        raise SystemExit(f"qinfer_on_numpy2: {tests / 'base_test.py'} not found; give a checkout of qinfer's source")
    package = workdir / "qinfer"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(HERE / "qinfer", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(tests, package / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    # qinfer's tests/__init__.py imports three test modules for convenience; one of them fails on NumPy 2
    # at import (np.float), which would fail every file. Left empty here: each file is charged for itself.
    (package / "tests" / "__init__.py").write_text("")
    (package / "_names.json").write_text(json.dumps(_names(checkout), indent=1))
    # Our own ini: neither the checkout's nor this repository's pytest settings apply.
    (workdir / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    return package / "tests"


def run_file(name: str, tests: Path, workdir: Path, args) -> dict:
    """Run one test file; its tests' worst reports by node id, and the job's exit status and last line."""
    report = workdir / f"{name}.jsonl"
    command = [sys.executable, "-m", "pytest", "-c", str(workdir / "pytest.ini"), "--rootdir", str(workdir),
               "-p", "qshim_plugin", "--qshim-report", str(report), "-q", "-W", "ignore::DeprecationWarning",
               str(tests / f"{name}.py")]
    if args.numpy_aliases:
        command.append("--qshim-numpy-aliases")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(workdir), str(HERE), str(REPO)]), PYTHONUNBUFFERED="1")
    log = workdir / f"{name}.log"
    with open(log, "w") as stream:
        try:
            rc = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    tests_found: OrderedDict[str, dict] = OrderedDict()
    if report.exists():
        for line in report.read_text().splitlines():
            record = json.loads(line)
            known = tests_found.get(record["nodeid"])
            if known is None or _SEVERITY[record["verdict"]] < _SEVERITY[known["verdict"]]:
                tests_found[record["nodeid"]] = record
    return {"name": name, "rc": rc, "tests": tests_found, "log": str(log)}


def _counts(result) -> dict:
    verdicts = Counter(record["verdict"] for record in result["tests"].values())
    return {"tests": sum(verdicts.values()), "passed": verdicts["passed"],
            "failed": verdicts["failed"] + verdicts["error"], "skipped": verdicts["skipped"]}


def _reasons(result) -> Counter:
    found = Counter()
    for record in result["tests"].values():
        if record["verdict"] in ("failed", "error") and record.get("why"):
            found[(record["why"]["kind"], record["why"]["detail"])] += 1
    return found


def render(results, numpy_version: str, aliases: bool) -> str:
    header = ["file", "tests", "passed", "failed", "skipped", "missing", "numpy2", "behaviour"]
    rows, totals = [], Counter()
    for result in results:
        counts = _counts(result)
        kinds = Counter()
        for (kind, _), n in _reasons(result).items():
            kinds[kind] += n
        row = [result["name"]] + [str(counts[k]) for k in header[1:5]] + [str(kinds[k]) for k in header[5:]]
        if result["rc"] == "timeout":
            row[0] += " (timed out)"
        rows.append(row)
        totals.update({k: counts[k] for k in header[1:5]})
        totals.update({k: kinds[k] for k in header[5:]})
    rows.append(["all"] + [str(totals[k]) for k in header[1:]])
    lines = [f"qinfer's tests on mpi_qinfer, NumPy {numpy_version}"
             + (" with NumPy 1's aliases (np.int, np.float, ...) given back" if aliases else ""), "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "missing: a name mpi_qinfer lacks; numpy2: qinfer's own test code uses what NumPy 2 removed; "
              "behaviour: anything else.", ""]
    for result in results:
        reasons = _reasons(result)
        if not reasons:
            continue
        lines.append(f"## {result['name']}")
        for (kind, detail), n in sorted(reasons.items(), key=lambda item: (item[0][0], -item[1], item[0][1])):
            lines.append(f"- {kind}, {n} test(s): {detail}")
            if kind == "behaviour":
                names = [nodeid.split("::", 1)[-1] for nodeid, record in result["tests"].items()
                         if record["verdict"] in ("failed", "error") and record.get("why")
                         and (record["why"]["kind"], record["why"]["detail"]) == (kind, detail)]
                lines.append(f"  ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = _arguments(argv)
    import numpy

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="qinfer-on-numpy2-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tests = prepare(args.checkout.resolve(), workdir)
    results = []
    for name in args.files:
        result = run_file(name, tests, workdir, args)
        counts = _counts(result)
        print(f"== {name}: {counts['tests']} tests, {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped (pytest rc={result['rc']}; log {result['log']})", flush=True)
        results.append(result)
    if not any(result["tests"] for result in results):
        print("qinfer_on_numpy2: no test reported anything; see the logs")
        return 2
    text = render(results, numpy.__version__, args.numpy_aliases)
    print()
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
