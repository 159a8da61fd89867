"""A Sphinx directive that shows the live ``--help`` text of ``python -m mpi_qinfer``.

Usage in a page::

    .. cli-help:: run

runs ``python -m mpi_qinfer run --help`` with the interpreter that builds the
docs and inserts its output as a literal block, so the documented options can
never drift from the code. A failing command is a build warning (an error
under ``-W``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class CliHelp(SphinxDirective):
    """``.. cli-help:: [sub-command ...]``: the help text of ``python -m mpi_qinfer``."""

    optional_arguments = 8
    has_content = False

    def run(self):
        args = list(self.arguments)
        command = [sys.executable, "-m", "mpi_qinfer", *args, "--help"]
        env = dict(os.environ, COLUMNS="88", PYTHONIOENCODING="utf-8")
        repo = os.path.dirname(self.env.srcdir) if hasattr(self.env, "srcdir") else None
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=repo)
        except (OSError, subprocess.TimeoutExpired) as error:
            return [self._warn(f"could not run {' '.join(command[1:])}: {error}")]
        if done.returncode != 0:
            return [self._warn(f"{' '.join(command[1:])} exited with {done.returncode}: {done.stderr.strip()}")]
        text = done.stdout.rstrip()
        shown = "$ python -m mpi_qinfer " + " ".join(args + ["--help"]) + "\n" + text
        block = nodes.literal_block(shown, shown)
        block["language"] = "none"
        return [block]

    def _warn(self, message):
        logger_node = self.state.document.reporter.warning(message, line=self.lineno)
        return logger_node


def setup(app):
    app.add_directive("cli-help", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
