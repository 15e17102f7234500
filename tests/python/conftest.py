"""Shared helpers for the Python tests (run by ctest through python/CMakeLists.txt, or by pytest directly with
PYTHONPATH=build/test/python)."""

import os
import threading

import numpy as np
import pytest

import culstm


def import_torch():
    """torch, or a skip; a failure instead when CULSTM_REQUIRE_TORCH is set (ctest sets it: CI must run these)."""
    try:
        import torch
    except ImportError as e:
        if os.environ.get("CULSTM_REQUIRE_TORCH"):
            pytest.fail(f"CULSTM_REQUIRE_TORCH is set but torch cannot be imported: {e}")
        pytest.skip(f"torch is not installed: {e}")
    return torch


def random_model(rng, input_size=3, hidden_size=5, proj_size=0, num_layers=1, bidirectional=False, bias=True,
                 peepholes=False, options=None, **spec_kwargs):
    """A culstm.Model with random f32 weights on a spec of these sizes; options: Model()'s keywords."""
    spec = culstm.LstmSpec(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
                           proj_size=proj_size, peepholes=peepholes, **spec_kwargs)
    directions = 2 if bidirectional else 1
    recurrent = proj_size or hidden_size
    layers = []
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else directions * recurrent
        for _ in range(directions):
            w = {"w_ih": rng.uniform(-0.5, 0.5, (4 * hidden_size, in_size)),
                 "w_hh": rng.uniform(-0.5, 0.5, (4 * hidden_size, recurrent))}
            if bias:
                w["b_ih"] = rng.uniform(-0.5, 0.5, 4 * hidden_size)
                w["b_hh"] = rng.uniform(-0.5, 0.5, 4 * hidden_size)
            if proj_size:
                w["w_hr"] = rng.uniform(-0.5, 0.5, (proj_size, hidden_size))
            if peepholes:
                w["peephole"] = rng.uniform(-0.5, 0.5, 3 * hidden_size)
            layers.append({k: v.astype(np.float32) for k, v in w.items()})
    return culstm.Model(spec, layers, **(options or {}))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def run_in_threads(worker, count=4):
    """Runs worker(k) for k in range(count), all at once in threads, and re-raises the first exception a worker
    raised: an exception inside a thread is otherwise only printed, and the test would pass without its checks."""
    errors = []

    def guarded(k):
        try:
            worker(k)
        except BaseException as e:  # noqa: BLE001 (re-raised in the test's thread below)
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


class DlpackOnly:
    """An array of 'another framework' that has only the DLPack protocol (no `shape`, no buffer): it exports the
    capsule of the array it wraps."""

    def __init__(self, inner):
        self.inner = inner

    def __dlpack__(self, *args, **kwargs):
        return self.inner.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.inner.__dlpack_device__()
