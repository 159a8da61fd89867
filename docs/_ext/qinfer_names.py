"""A Sphinx directive that tables which of qinfer's public names mpi_qinfer has.

Usage in a page::

    .. qinfer-names::

The list of qinfer's names is data, ``qinfer_names.txt`` beside this file
(made from qinfer's source by ``scripts/list_qinfer_names.py``; its header says
from which commit). Whether mpi_qinfer has each name is looked up in the
package when the docs are built, so the table cannot drift from the code.
:func:`name_rows` is the table's content without Sphinx, for the tests.
"""

from __future__ import annotations

import importlib
from pathlib import Path

DATA = Path(__file__).resolve().with_name("qinfer_names.txt")

#: Why some of qinfer's names are not here (names mpi_qinfer lacks and will not simply gain).
WHY_NOT = {
    "DirectViewParallelizedModel": "ipyparallel's proxy; MPIParallelizedModel is this package's",
    "IPythonProgressBar": "Progress reports an SMC loop's progress",
    "HilbertSchmidtUniform": "qinfer's cannot be made (its _sample is abstract; its sampler draws the Bures "
                             "measure); GinibreUniform(k=2) is the Hilbert-Schmidt measure on a qubit",
    "AcceleratedPrecessionModel": "OpenCL (PyOpenCL); MPIParallelizedModel parallelises any model",
    "weighted_pairwise_distances": "in mpi_qinfer.clustering",
    "read_config": "qinfer's own configuration file",
    "save_config": "qinfer's own configuration file",
}


def read_names(path: Path = DATA) -> list[tuple[str, str]]:
    """``(qinfer module, name)`` for every name of the data file, in its order."""
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            module, name = line.split()
            rows.append((module, name))
    return rows


def counterpart(module: str, name: str) -> str | None:
    """Where mpi_qinfer has qinfer's ``module.name``: ``mpi_qinfer.<sub>.<name>`` or ``mpi_qinfer.<name>``; or None.

    A name of a qinfer submodule (``qinfer.utils.to_simplex``) is looked for in the same submodule of
    mpi_qinfer first (``mpi_qinfer.utils``), then at the top; qinfer's top-level names at the top.
    Nothing that needs MPI is loaded (none of qinfer's names is one of mpi_qinfer's MPI names).
    """
    places = []
    sub = module.split(".", 1)[1] if "." in module else ""
    if sub:
        places.append(f"mpi_qinfer.{sub}")
    places.append("mpi_qinfer")
    for place in places:
        try:
            found = importlib.import_module(place)
        except ImportError:
            continue
        if getattr(found, name, None) is not None:
            return f"{place}.{name}"
    return None


def name_rows() -> list[tuple[str, str | None, str]]:
    """The table: ``(qinfer's name, mpi_qinfer's or None, why not)``, one row per name of the data file."""
    return [(f"{module}.{name}", counterpart(module, name), WHY_NOT.get(name, ""))
            for module, name in read_names()]


def summary(rows) -> str:
    have = sum(mine is not None for _, mine, _ in rows)
    return f"Of qinfer's {len(rows)} public names, mpi_qinfer has {have}; {len(rows) - have} are missing."


def _table_lines(rows) -> list[str]:
    lines = [summary(rows), "", ".. list-table::", "   :header-rows: 1", "   :widths: 40 40 40", "",
             "   * - qinfer", "     - mpi_qinfer", "     - Note"]
    for theirs, mine, why in rows:
        lines += [f"   * - ``{theirs}``", f"     - ``{mine}``" if mine else "     - **missing**",
                  f"     - {why}" if why else "     -"]
    return lines


def setup(app):
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class QinferNames(SphinxDirective):
        """``.. qinfer-names::``: qinfer's public names and mpi_qinfer's, side by side."""

        has_content = False

        def run(self):
            container = nodes.container()
            self.state.nested_parse(StringList(_table_lines(name_rows()), source="qinfer-names"),
                                    self.content_offset, container)
            return container.children

    app.add_directive("qinfer-names", QinferNames)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
