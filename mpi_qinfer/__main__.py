"""Entry point of ``python -m mpi_qinfer``: hands the command line to :func:`mpi_qinfer.cli.main.main`."""

from .cli.main import main

raise SystemExit(main())
