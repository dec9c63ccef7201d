"""Shared fixtures: one small toy dataset and its tokenizer per test session (a second or two on CPU).

The suite runs on the CPU with any GPU hidden, so that a machine with one runs the same tests the same way (gloo, CPU
tensors, bit-identical resumes); `python -m pytest -m cuda` keeps the GPU visible and runs the tests that need it
(tests/test_cuda.py), which skip without one."""

import os

import pytest


def pytest_configure(config):
    """Hides the GPU before anything asks CUDA for its devices: test modules are imported after this runs, and this
    file imports torch (through toy) only inside its fixtures."""
    if config.option.markexpr != "cuda":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory):
    """make_toy(n=6): 5 train + 1 test clips (mcq, tvg, gqa, mcq, tvg | gqa), 4-8 s, 32x32 px, 4 fps mp4."""
    import toy
    out = tmp_path_factory.mktemp("toy")
    toy.make_toy(str(out), n=6, seed=0)
    return out


@pytest.fixture(scope="session")
def toy_tok():
    import toy
    return toy.toy_tokenizer()
