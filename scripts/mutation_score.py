"""The mutation score of the last `mutmut run`, by module and in all, from `mutmut results --all true`.

Run from the repository root after ``.venv/bin/mutmut run``::

    python scripts/mutation_score.py [--mutmut .venv/bin/mutmut]

A mutant counts as detected when the tests killed it, timed out or crashed
on it; the score is detected / all mutants (those no test reaches count as
not detected).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys

DETECTED = {"killed", "timeout", "segfault"}
#: "    mpi_qinfer.engine.core.xǁEngineǁcall__mutmut_3: survived"
LINE = re.compile(r"^\s*(?P<module>[\w.]+?)\.(?:x_|xǁ)\S*__mutmut_\d+: (?P<status>.+)$")


def tally(lines):
    """Per module: Counter of statuses."""
    by_module = collections.defaultdict(collections.Counter)
    for line in lines:
        match = LINE.match(line)
        if match:
            by_module[match["module"]][match["status"].strip()] += 1
    return by_module


def report(by_module) -> list[str]:
    """A line per module, then the total: detected of all, and the percentage."""
    lines, detected_all, total_all = [], 0, 0
    for module in sorted(by_module):
        counts = by_module[module]
        detected, total = sum(counts[status] for status in DETECTED), sum(counts.values())
        detected_all, total_all = detected_all + detected, total_all + total
        others = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()) if status not in DETECTED)
        lines.append(f"{module:40s} {detected:5d}/{total:<5d} {100 * detected / total:5.1f}%  {others}")
    if total_all:
        lines.append(f"{'all':40s} {detected_all:5d}/{total_all:<5d} {100 * detected_all / total_all:5.1f}%")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutmut", default=".venv/bin/mutmut", help="the mutmut command (default: .venv/bin/mutmut)")
    args = parser.parse_args(argv)
    done = subprocess.run([args.mutmut, "results", "--all", "true"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"mutmut results failed:\n{done.stdout}{done.stderr}")
    lines = report(tally(done.stdout.splitlines()))
    if not lines:
        sys.exit("no mutants found: run `mutmut run` first")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
