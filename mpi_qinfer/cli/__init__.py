"""The command line, ``mpi-qinfer`` / ``python -m mpi_qinfer``: :mod:`~mpi_qinfer.cli.main` parses and
dispatches to the ``demo``, ``info``, ``run`` and ``bench`` sub-commands, one module each.
"""
