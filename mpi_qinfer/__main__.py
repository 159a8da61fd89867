"""Entry point of ``python -m mpi_qinfer``: hands the command line to :func:`mpi_qinfer.cli.main`."""

from .cli import main

raise SystemExit(main())
