"""Comparing the proxy's answers with the serial model's: bitwise, type and dtype included."""

from __future__ import annotations

import numpy as np

#: serial_threshold values: always parallel, the proxy's own choice, never parallel.
THRESHOLDS = {"parallel": 0, "auto": "auto", "serial": 10**15}


def assert_bitwise(got, want, what="answer"):
    """Same Python type, dtype, shape and bytes (NaNs and signed zeros included)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: {type(got)} vs a {len(want)}-tuple"
        for index, (g, w) in enumerate(zip(got, want)):
            assert_bitwise(g, w, f"{what}[{index}]")
        return
    assert type(got) is type(want), f"{what}: type {type(got).__name__}, serial gives {type(want).__name__}"
    got_array, want_array = np.asarray(got), np.asarray(want)
    assert got_array.dtype == want_array.dtype, f"{what}: dtype {got_array.dtype}, serial gives {want_array.dtype}"
    assert got_array.shape == want_array.shape, f"{what}: shape {got_array.shape}, serial gives {want_array.shape}"
    assert np.ascontiguousarray(got_array).tobytes() == np.ascontiguousarray(want_array).tobytes(), (
        f"{what}: values differ from the serial model's"
    )


def reseed_model_rng(serial):
    """Restart the streams a model of this package draws from."""
    serial.rng = np.random.default_rng(2024)


def reseed_global(serial):
    """Restart NumPy's global stream, which qinfer's models draw from."""
    np.random.seed(2024)


def check_simulation(proxy, serial, modelparams, expparams, repeat=1, reseed=reseed_model_rng):
    """Simulated outcomes: bitwise the serial draws where the root draws them; else same type, dtype, shape.

    Only ``serial_threshold=0`` sends these small simulations to every rank
    (in ``"auto"`` mode simulations stay on the root below 100,000 draws).
    """
    reseed(serial)
    got = proxy.simulate_experiment(modelparams, expparams, repeat=repeat)
    reseed(serial)
    want = serial.simulate_experiment(modelparams, expparams, repeat=repeat)
    if proxy.serial_threshold != 0:
        assert_bitwise(got, want, "simulate_experiment")
    else:
        assert type(got) is type(want), f"simulate_experiment: {type(got).__name__} vs {type(want).__name__}"
        assert np.asarray(got).dtype == np.asarray(want).dtype, f"simulate_experiment dtype {np.asarray(got).dtype}"
        assert np.shape(got) == np.shape(want), f"simulate_experiment shape {np.shape(got)}"
    return got


def same_on_both(proxy, serial, method, *args, **kwargs):
    """Call ``method`` on the proxy and on the serial model with the same arguments; compare bitwise."""
    got = getattr(proxy, method)(*args, **kwargs)
    want = getattr(serial, method)(*args, **kwargs)
    assert_bitwise(got, want, method)
    return got
