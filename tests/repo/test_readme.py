"""The README's code runs: its script under mpiexec, its fragments at least compile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import needs_mpiexec, run_mpi_script

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_every_python_block_compiles():
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        compile(block, str(README), "exec")


@needs_mpiexec
def test_the_readme_script_estimates_omega_on_two_ranks(tmp_path):
    done, _ = run_mpi_script(tmp_path, python_blocks()[0], n_ranks=2, timeout=120)
    assert done.returncode == 0, done.stderr
    match = re.search(r"omega = \[([0-9.]+)\] \+/- \[([0-9.e-]+)\]", done.stdout)
    assert match, done.stdout
    estimate, sigma = float(match.group(1)), float(match.group(2))
    # The truth lies within 5 posterior widths in every one of 400 seeds of this script run serially.
    assert abs(estimate - 0.7) < 5 * sigma


@needs_mpiexec
def test_the_readme_script_is_reproducible_on_any_number_of_ranks(tmp_path):
    """Seeded data and updater: one plain process prints exactly what two ranks print."""
    done, _ = run_mpi_script(tmp_path, python_blocks()[0], n_ranks=2, timeout=120)
    assert done.returncode == 0, done.stderr
    plain = subprocess.run([sys.executable, str(tmp_path / "job.py")], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("omega = [") and plain.stdout == done.stdout
