"""bench.py runs end to end on a tiny sweep, fills every column, and refuses to post a number for a wrong fast path.
No timing assertions: the numbers are for reading, not for tests."""

import json

import pytest
import torch

import attention
import bench
import model as vlm

TINY = ["--P", "48", "--C", "4", "--G", "2", "--repeats", "1", "--layers", "1", "--device", "cpu",
        "--dtype", "float32"]


def test_small_sweep_fills_the_table_and_the_json(tmp_path, capsys):
    rows = bench.main(TINY + ["--out", str(tmp_path / "bench.json")])
    train = [r for r in rows if r["kind"] == "train"]
    rollout = [r for r in rows if r["kind"] == "rollout"]
    assert len(train) == len(rollout) == 1
    t, r = train[0], rollout[0]
    assert (t["P"], t["C"], t["G"], t["video"]) == (48, 4, 2, 32)  # 2 temporal blocks of 16 video tokens, 16 text
    assert t["ideal"] == pytest.approx(2 * (48 + 4) / (48 + 2 * 4))
    assert all(t[k] > 0 for k in ("naive_s", "packed_s", "naive_mem", "packed_mem"))
    assert t["packed_mem"] < t["naive_mem"]  # one prompt's activations saved for backward, not two
    assert t["max_abs"] <= 1e-4  # the oracle ran
    assert r["generate_s"] > 0 and r["ours_s"] > 0 and r["same_tokens"] == 1.0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| 48 (32) | 4 | 2 |")]
    assert len(table) == 2 and all("×" in line for line in table)
    assert json.loads((tmp_path / "bench.json").read_text())["rows"] == json.loads(json.dumps(rows))


def siblings_visible(segments, length):
    """A wrong packed path, fast: a plain causal mask over the packed row, so a completion also sees its siblings."""
    return torch.ones(length, length, dtype=torch.bool).tril()


def test_a_wrong_packed_path_is_caught(monkeypatch):
    """float32 on CPU, where both paths agree to 1e-4: a wrong path stops the sweep."""
    monkeypatch.setattr(attention, "block_mask", siblings_visible)
    with pytest.raises(AssertionError, match="differ from the plain forward"):
        bench.main(TINY + ["--skip-rollout"])


def test_a_bf16_row_past_the_tolerance_reports_its_difference(monkeypatch, capsys):
    """In bf16 a row's difference is reported, never raised: the same wrong path gives a mean |Δ logp| above 0.02,
    the row says so, and the sweep runs to its end (two rows here)."""
    monkeypatch.setattr(attention, "block_mask", siblings_visible)
    rows = bench.main(["--P", "48", "--C", "8", "12", "--G", "2", "--repeats", "1", "--layers", "1", "--device", "cpu",
                       "--dtype", "bfloat16", "--skip-rollout"])
    assert len(rows) == 2 and not any(r["within_tolerance"] for r in rows)
    assert all(r["mean_abs"] > 0.02 for r in rows)
    assert capsys.readouterr().out.count("past the tolerance") == 2


def test_allocation_failures_count_as_out_of_memory():
    """torch.OutOfMemoryError, and RuntimeErrors whose message says out of memory or a failed allocation (cuBLAS,
    cuDNN), mark the path out of memory; the other path still runs; any other error still stops the sweep."""
    def fails(error):
        def fn(first):
            raise error
        return fn
    ok = lambda first: (0.5, None, "result")
    for error in (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                  RuntimeError("CUDA error: out of memory"),
                  RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")):
        assert bench.timed({"naive": fails(error), "packed": ok}, 2, torch.device("cpu"), on_oom=True) == {
            "naive": None, "packed": (0.5, None, "result")}
    with pytest.raises(RuntimeError, match="illegal memory access"):
        bench.timed({"naive": fails(RuntimeError("CUDA error: an illegal memory access")), "packed": ok}, 2,
                    torch.device("cpu"), on_oom=True)
    with pytest.raises(torch.OutOfMemoryError):  # on CPU a path out of memory is an error
        bench.timed({"naive": fails(torch.OutOfMemoryError("out of memory")), "packed": ok}, 2, torch.device("cpu"),
                    on_oom=False)


def test_prompts_have_exactly_p_tokens_mostly_video():
    config = bench.bench_config("tiny-wide", 1, 1)
    sample, completions = bench.make_group(config, 100, 5, 3, 8, torch.float32)
    assert len(sample.prompt_ids) == 100 and int((sample.prompt_ids == config.video_token_id).sum()) == 80
    assert sample.grid_thw.tolist() == [[5, 8, 8]] and sample.pixel_values.shape == (5 * 8 * 8, 3 * 2 * 14 * 14)
    assert [len(c) for c in completions] == [5, 5, 5]
    positions = vlm.rope_positions(sample.prompt_ids, sample.grid_thw, sample.second_per_grid, config)  # grid fits
    assert positions.shape == (4, 100) and int(positions[1:].max()) < 100
