"""Sphinx configuration of the mpi_qinfer documentation.

Build (warnings are errors)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))  # the package, also when it is not installed

import mpi_qinfer  # noqa: E402

project = "mpi_qinfer"
author = "The mpi_qinfer developers"
copyright = "the mpi_qinfer developers"
version = release = mpi_qinfer.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "cli_help",  # docs/_ext/cli_help.py: `python -m mpi_qinfer ... --help` output, run at build time
    "updater_members",  # docs/_ext/updater_members.py: both updaters' members, tabled from the classes
    "qinfer_names",  # docs/_ext/qinfer_names.py: which of qinfer's names mpi_qinfer has, looked up in the package
]

# Offline build: no intersphinx (it would download inventories and warn without a network).
exclude_patterns = ["_build"]
templates_path: list[str] = []
root_doc = "index"
highlight_language = "none"  # plain `::` blocks are shell or output; Python blocks say so

# autodoc / autosummary: document each object once, where it is defined; the
# package page lists the re-exports with links (autosummary tables, no stub files).
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections already give the types
autodoc_default_options = {"members": True, "show-inheritance": True}
autosummary_generate = False

# numpydoc: no automatic member tables (they would need generated stub pages).
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "qinfer-style models, parallel over MPI", "fixed_sidebar": True}
