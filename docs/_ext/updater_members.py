"""A Sphinx directive that tables the public members of SMCUpdater and DistributedSMCUpdater.

Usage in a page::

    .. updater-members::

The table is made from the classes when the docs are built: every public
method, property and attribute of either updater, its parameters and their
defaults, and whether the other updater has it with the same ones. So the
documented correspondence can never drift from the code.
:func:`member_rows` is the table's content without Sphinx, for the tests.
"""

from __future__ import annotations

import inspect

#: How a member of the distributed updater compares with SMCUpdater's.
SAME, DIFFERS, MISSING, READ_ONLY, ONLY_DISTRIBUTED = "same", "differs", "missing", "read-only", "distributed only"
#: A member with the same signature and defaults whose use is narrower on a sharded cloud (see EXCEPTIONS).
LIMITED = "limited"

#: The members the distributed updater has with SMCUpdater's signature and defaults but cannot do all of, and why.
EXCEPTIONS = {
    "__init__(debug_resampling)": "True is refused: logging each resampling's change of the moments needs the "
                                  "whole cloud on one rank before and after every resampling",
    "__init__(track_resampling_divergence)": "True is refused: the divergence needs the whole cloud before and "
                                             "after every resampling on one rank",
    "resampling_divergences": "always None (tracking is refused, see above)",
}


class _OneParameter:
    """The smallest model an SMCUpdater can be built on (to list its instance attributes)."""

    n_modelparams = 1

    def likelihood(self, outcomes, modelparams, expparams):  # pragma: no cover - never called
        raise NotImplementedError

    def are_models_valid(self, modelparams):  # pragma: no cover - never called
        raise NotImplementedError


class _OnePrior:
    def sample(self, n=1, rng=None):
        import numpy as np

        return np.zeros((n, 1))


def _serial_attributes() -> set[str]:
    """The public attributes an SMCUpdater sets on itself (not visible on its class)."""
    from mpi_qinfer.smc import SMCUpdater

    updater = SMCUpdater(_OneParameter(), 1, _OnePrior(), rng=0)
    return {name for name in vars(updater) if not name.startswith("_")}


def _public(cls) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def _describe(cls, name: str, attributes: set[str]):
    """``(kind, text, key)`` of member ``name`` of ``cls``; key compares two members. None if absent."""
    member = inspect.getattr_static(cls, name, None)
    if member is None:
        if name in attributes:
            return "attribute", "", ("attribute",)
        return None
    if isinstance(member, property):
        settable = member.fset is not None
        return "property", "settable" if settable else "read-only", ("property", settable)
    if callable(member):
        signature = inspect.signature(getattr(cls, name))
        parameters = [p for p in signature.parameters.values() if p.name != "self"]
        text = ", ".join(_parameter_text(p) for p in parameters)
        key = ("method",) + tuple((p.name, p.kind, p.default) for p in parameters)
        return "method", f"({text})", key
    return "attribute", repr(member), ("attribute",)


def _parameter_text(parameter: inspect.Parameter) -> str:
    if parameter.default is inspect.Parameter.empty:
        return parameter.name
    return f"{parameter.name}={parameter.default!r}"


def _constructor_parameters(cls) -> dict:
    return {p.name: p for p in inspect.signature(cls).parameters.values()}


def member_rows() -> list[tuple[str, str, str, str, str]]:
    """The table: ``(member, kind, SMCUpdater's, DistributedSMCUpdater's, verdict)``, one row per member.

    The verdict is one of :data:`SAME`, :data:`DIFFERS`, :data:`MISSING`,
    :data:`READ_ONLY` (an attribute of SMCUpdater that the distributed
    updater offers as a read-only property), :data:`LIMITED` (the same
    signature, but a use the distributed updater refuses; the reason is in
    :data:`EXCEPTIONS`) and :data:`ONLY_DISTRIBUTED`.
    Constructor parameters appear as ``__init__(name)`` rows with their
    defaults. An attribute that SMCUpdater sets on itself counts as present
    on the distributed updater when it is a member of that class or one of
    its constructor parameters (which it keeps under the same name; the tests
    check this on live updaters).
    """
    from mpi_qinfer.distributed import DistributedSMCUpdater
    from mpi_qinfer.smc import SMCUpdater

    rows = []
    serial_init, distributed_init = _constructor_parameters(SMCUpdater), _constructor_parameters(DistributedSMCUpdater)
    for name in list(serial_init) + [name for name in distributed_init if name not in serial_init]:
        serial, distributed = serial_init.get(name), distributed_init.get(name)
        serial_text = "" if serial is None else _parameter_text(serial)
        distributed_text = "" if distributed is None else _parameter_text(distributed)
        if serial is None:
            verdict = ONLY_DISTRIBUTED
        elif distributed is None:
            verdict = MISSING
        else:
            same = (distributed.default, distributed.kind) == (serial.default, serial.kind)
            verdict = SAME if same else DIFFERS
        row = f"__init__({name})"
        rows.append((row, "parameter", serial_text, distributed_text, _limited(row, verdict)))

    serial_attributes = _serial_attributes()
    names = sorted(_public(SMCUpdater) | serial_attributes | _public(DistributedSMCUpdater))
    for name in names:
        serial = _describe(SMCUpdater, name, serial_attributes)
        distributed = _describe(DistributedSMCUpdater, name, set(distributed_init))
        if serial is None:
            rows.append((name, distributed[0], "", distributed[1], ONLY_DISTRIBUTED))
            continue
        if distributed is None:
            verdict = MISSING
        elif distributed[2] == serial[2]:
            verdict = SAME
        elif serial[0] == "attribute" and distributed[0] == "property":
            verdict = SAME if distributed[2][1] else READ_ONLY
        else:
            verdict = DIFFERS
        rows.append((name, serial[0], serial[1], "" if distributed is None else distributed[1],
                     _limited(name, verdict)))
    return rows


def _limited(name: str, verdict: str) -> str:
    """:data:`LIMITED` for a member of :data:`EXCEPTIONS` whose signature is the same."""
    return LIMITED if verdict == SAME and name in EXCEPTIONS else verdict


def _cell(text: str) -> str:
    return f"``{text}``" if text else "\\-"


def _table_lines(rows) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 24 10 33 33", "",
             "   * - Member", "     - Kind", "     - SMCUpdater", "     - DistributedSMCUpdater"]
    for name, kind, serial, distributed, verdict in rows:
        if verdict == SAME:
            theirs = "the same"
        elif verdict == ONLY_DISTRIBUTED:
            literal = distributed.startswith("(") or kind == "parameter"
            theirs = _cell(distributed) if literal else (distributed or "yes")
        elif verdict == MISSING:
            theirs = "**missing**"
        elif verdict == READ_ONLY:
            theirs = "read-only property (gathers the cloud to the root)"
        elif verdict == LIMITED:
            theirs = f"the same; {EXCEPTIONS[name]}"
        else:
            theirs = f"**differs**: {_cell(distributed)}"
        mine = _cell(serial) if serial.startswith("(") or kind == "parameter" else (serial or "yes")
        if verdict == ONLY_DISTRIBUTED:
            mine = "\\-"
        lines += [f"   * - ``{name}``", f"     - {kind}", f"     - {mine}", f"     - {theirs}"]
    return lines


def setup(app):
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class UpdaterMembers(SphinxDirective):
        """``.. updater-members::``: the members of both updaters, side by side."""

        has_content = False

        def run(self):
            container = nodes.container()
            self.state.nested_parse(StringList(_table_lines(member_rows()), source="updater-members"),
                                    self.content_offset, container)
            return container.children

    app.add_directive("updater-members", UpdaterMembers)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
