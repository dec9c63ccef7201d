"""Shared fixtures: one small toy dataset and its tokenizer per test session (a second or two on CPU)."""

import pytest

import toy


@pytest.fixture(scope="session")
def toy_dir(tmp_path_factory):
    """make_toy(n=6): 5 train + 1 test clips (mcq, tvg, gqa, mcq, tvg | gqa), 4-8 s, 64x64 px, 4 fps mp4."""
    out = tmp_path_factory.mktemp("toy")
    toy.make_toy(str(out), n=6, seed=0)
    return out


@pytest.fixture(scope="session")
def toy_tok():
    return toy.toy_tokenizer()
