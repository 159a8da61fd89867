"""``python -m mpi_qinfer.cli.bench``: the benchmark without the ``mpi_qinfer`` command line around it."""

from . import build_parser, main

if __name__ == "__main__":
    raise SystemExit(main(build_parser().parse_args()))
