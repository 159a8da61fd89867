"""What the proxy's bitwise parity rests on, checked without MPI for any number of ranks.

A proxy on N ranks asks each rank's serial model for a contiguous block of the particles or of the
experiments and puts the answers side by side. That is bitwise the whole call only if the model's
answer for a block is the same bits as the block of its answer for the whole call. A model that
breaks it (a NumPy loop whose last bit depends on the shapes it runs over) passes at 2 and 3 ranks
by chance and fails at others; here every model of the parity suite is split the way 2 to 8 ranks
would split it.
"""

from __future__ import annotations

import numpy as np
import pytest
from parity_models import N_MODELS, SERIAL_MODELS, all_outcomes, random_expparams, random_modelparams

from mpi_qinfer.engine.partition import displacements, even_counts

RANKS = range(2, 9)


@pytest.mark.parametrize("name", sorted(SERIAL_MODELS))
def test_the_likelihood_of_a_block_is_the_block_of_the_likelihood(name):
    model = SERIAL_MODELS[name]()
    rng = np.random.default_rng(7)
    for n_models in N_MODELS:
        for n_exp in (1, 2, 5):
            modelparams = random_modelparams(model, n_models, rng)
            expparams = random_expparams(model, n_exp, rng)
            outcomes = all_outcomes(model, expparams)
            whole = model.likelihood(outcomes, modelparams, expparams)
            for size in RANKS:
                for axis, rows in ((1, n_models), (2, n_exp)):
                    counts = even_counts(rows, size)
                    for count, first in zip(counts.tolist(), displacements(counts).tolist()):
                        if not count:
                            continue
                        block = slice(first, first + count)
                        if axis == 1:
                            part = model.likelihood(outcomes, modelparams[block], expparams)
                        else:
                            part = model.likelihood(outcomes, modelparams, expparams[block])
                        want = np.ascontiguousarray(whole[:, block] if axis == 1 else whole[:, :, block])
                        assert part.tobytes() == want.tobytes(), (n_models, n_exp, size, axis, first)
