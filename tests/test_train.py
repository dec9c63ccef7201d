"""train.py as worked examples: each test runs the real script in a subprocess (CleanRL's habit), on CPU.

- torchrun with 2 processes (gloo, FSDP2) trains a few GRPO steps and writes a checkpoint `from_pretrained` loads;
- a run killed after N steps and resumed equals an uninterrupted run of 2N steps, bit for bit (one process, and
  two under torchrun, whose optimizer state each rank saves and reads as its own shard);
- the scaled-down toy default (SFT warm start, then GRPO) raises the reward on a fixed seed.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

import model as vlm
import schema
import video
from toy import make_toy, toy_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def run(args, cwd):
    """Run a command; on failure show its output."""
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    output = f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    assert proc.returncode == 0, f"{' '.join(args)}\n{output}"
    return proc


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A small toy split and a tiny random Qwen2.5-VL saved in HF format."""
    root = tmp_path_factory.mktemp("toy")
    make_toy(str(root / "data"), n=12, seed=0)
    tokenizer = toy_tokenizer()
    torch.manual_seed(0)
    vlm.load_model(vlm.tiny_config("qwen2_5_vl", tokenizer)).save_pretrained(root / "init")
    tokenizer.save_pretrained(root / "init")
    return root


@pytest.fixture(scope="module")
def warm(toy):
    """SFT on the ground-truth targets (the toy default's warm start), so that GRPO's rewards vary."""
    out = toy / "sft"
    run([sys.executable, "train.py", "--model", str(toy / "init"), "--data", str(toy / "data" / "train.jsonl"),
         "--out", str(out), "--mode", "sft", "--steps", "60", "--batch_size", "3", "--pack_prompts", "3",
         "--max_frames", "4", "--dtype", "float32", "--lr", "5e-3", "--save_every", "60"], cwd=ROOT)
    return out


def grpo_args(toy, out, *extra):
    return ["--model", str(toy / "sft" / "checkpoint-60"), "--data", str(toy / "data" / "train.jsonl"),
            "--out", str(out),
            "--batch_size", "1", "--group_size", "4", "--max_new_tokens", "40", "--max_frames", "4",
            "--dtype", "float32", "--lr", "1e-3", "--temperature", "1.0", *extra]


def test_torchrun_two_processes_fsdp2_checkpoint_loads(toy, warm, tmp_path):
    """Two CPU processes (gloo), FSDP2-sharded policy and reference, computing in bf16 with activation
    checkpointing (a 7B run's settings): 2 steps, then a checkpoint in HF format whose full (gathered) weights load
    with from_pretrained and differ from the starting weights."""
    out = tmp_path / "ddp"
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "train.py",
         *grpo_args(toy, out, "--steps", "2", "--save_every", "2"), "--dtype", "bfloat16",
         "--grad_checkpointing", "true"], cwd=ROOT)
    ckpt = out / "checkpoint-2"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "trainer_state.pt").exists()
    loaded = Qwen2_5_VLForConditionalGeneration.from_pretrained(ckpt)
    start = Qwen2_5_VLForConditionalGeneration.from_pretrained(warm / "checkpoint-60")
    assert AutoTokenizer.from_pretrained(ckpt).convert_tokens_to_ids("<|video_pad|>") == loaded.config.video_token_id
    moved = [n for (n, p), q in zip(loaded.named_parameters(), start.parameters()) if not torch.equal(p, q)]
    assert moved, "training changed no weight"
    assert [m["step"] for m in metrics(out)] == [1, 2]


def test_torchrun_online_selection_with_ranks_dropping_different_numbers_of_groups(toy, warm, tmp_path):
    """--min-group-std under torchrun: each rank drops its own groups, so one rank may have fewer micro-batches
    than the other (or none); it pads with passes weighted 0 so that FSDP's collectives still pair up. 4 steps of 2
    prompts per rank, beta 0.01 (a sharded reference too): the run ends, and the log counts the dropped groups."""
    out = tmp_path / "online"
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "train.py",
         *grpo_args(toy, out, "--steps", "4", "--save_every", "4", "--batch_size", "2", "--pack_prompts", "1",
                    "--min_group_std", "0.15", "--beta", "0.01")], cwd=ROOT)
    logged = metrics(out)
    assert [m["step"] for m in logged] == [1, 2, 3, 4] and (out / "checkpoint-4").exists()
    assert all(0 <= m["dropped_groups"] <= 2 for m in logged)  # the mean over ranks of each rank's count
    assert any(m["dropped_groups"] % 1 for m in logged)  # (0.5: 1 and 0) a step where the ranks' counts differed


def test_kill_and_resume_equals_uninterrupted_run(toy, warm, tmp_path):
    """4 steps straight vs 3 steps, exit (as if killed during step 4's save: checkpoint-2 is the last complete
    one), `--resume auto`, steps 3 and 4 again: the per-step losses and the final weights are identical
    (torch.equal: bit for bit on CPU), the log holds each step once, and the half-written checkpoint (a leftover
    temporary folder) is ignored."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run([sys.executable, "train.py", *grpo_args(toy, straight, "--steps", "4", "--save_every", "2")], cwd=ROOT)
    run([sys.executable, "train.py", *grpo_args(toy, resumed, "--steps", "4", "--save_every", "2",
                                                "--stop_after", "3")], cwd=ROOT)
    assert [m["step"] for m in metrics(resumed)] == [1, 2, 3]
    (resumed / ".tmp-checkpoint-4").mkdir()  # a kill during the next save leaves only this behind
    run([sys.executable, "train.py", *grpo_args(toy, resumed, "--steps", "4", "--save_every", "2",
                                                "--resume", "auto")], cwd=ROOT)
    a, b = metrics(straight), metrics(resumed)
    assert [m["step"] for m in b] == [1, 2, 3, 4]
    assert [m["loss"] for m in a] == [m["loss"] for m in b]
    assert [m["reward"] for m in a] == [m["reward"] for m in b]
    for weights in ("model.safetensors", "master_weights.safetensors"):  # the bf16 export, the float32 weights
        wa, wb = load_file(straight / "checkpoint-4" / weights), load_file(resumed / "checkpoint-4" / weights)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert sorted(os.listdir(resumed)).count("checkpoint-2") == 1


def test_two_process_kill_and_resume_equals_uninterrupted_run(toy, warm, tmp_path):
    """The same under torchrun with 2 processes (FSDP2, gloo): 3 steps, exit, `--resume auto` from checkpoint-2,
    whose AdamW moments each rank wrote and reads back as its own shard (optimizer/: one .distcp file per rank),
    equals 4 steps straight, bit for bit."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "train.py"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run([*torchrun, *grpo_args(toy, straight, "--steps", "4", "--save_every", "2")], cwd=ROOT)
    run([*torchrun, *grpo_args(toy, resumed, "--steps", "4", "--save_every", "2", "--stop_after", "3")], cwd=ROOT)
    assert sorted(os.listdir(resumed / "checkpoint-2" / "optimizer")) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    run([*torchrun, *grpo_args(toy, resumed, "--steps", "4", "--save_every", "2", "--resume", "auto")], cwd=ROOT)
    assert [m["loss"] for m in metrics(straight)] == [m["loss"] for m in metrics(resumed)]
    for weights in ("model.safetensors", "master_weights.safetensors"):
        wa, wb = load_file(straight / "checkpoint-4" / weights), load_file(resumed / "checkpoint-4" / weights)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


LOAD_ONCE = """
import sys, torch, torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
import distributed, model as vlm
rank, world, device = distributed.init(need_group=True)
calls, real = [], vlm.load_model
vlm.load_model = lambda what, **k: calls.append(type(what).__name__) or real(what, **k)
module = distributed.load_sharded(sys.argv[1], torch.float32, torch.float32, init_device_mesh("cpu", (world,)), device)
full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
buffers = {n: b.clone() for n, b in module.named_buffers()}
sys.stdout.write(f"{rank} {calls}\\n")  # one write of the whole line: the two ranks share the pipe
sys.stdout.flush()
if rank == 0:
    expected = real(sys.argv[1])
    assert full.keys() == expected.state_dict().keys()
    assert all(torch.equal(full[k], v) for k, v in expected.state_dict().items())
    assert all(torch.equal(buffers[n], b) for n, b in expected.named_buffers())
    print("equal", flush=True)
distributed.close()
"""


def test_weights_are_read_once_per_node_and_each_rank_gets_its_shard(toy):
    """Two ranks load a checkpoint folder for FSDP2: only rank 0 reads the weights (load_model with the folder's
    path); rank 1 builds the model from its config on the meta device (no memory) and receives its shard from rank 0.
    The gathered weights and the rotary tables equal a plain from_pretrained, bit for bit."""
    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
                sys.executable, "-c", LOAD_ONCE, str(toy / "init")], cwd=ROOT)
    assert "0 ['str', 'Qwen2_5_VLConfig']" in proc.stdout and "1 ['Qwen2_5_VLConfig']" in proc.stdout
    assert "equal" in proc.stdout


def test_bf16_compute_keeps_float32_weights_so_small_updates_land(toy, tmp_path):
    """--dtype bfloat16 computes in bf16 but keeps float32 weights: an lr of 1e-5 moves every weight of a layer
    (in bf16 storage most such updates round away) and the checkpoint holds the float32 weights (those a resume
    goes on from) beside their bf16 export, both under the names Hugging Face's own save_pretrained writes."""
    out = tmp_path / "bf16"
    run([sys.executable, "train.py", "--model", str(toy / "init"), "--data", str(toy / "data" / "train.jsonl"),
         "--out", str(out), "--mode", "sft", "--steps", "2", "--batch_size", "3", "--pack_prompts", "3",
         "--max_frames", "4", "--dtype", "bfloat16", "--lr", "1e-5", "--save_every", "2"], cwd=ROOT)
    export = load_file(out / "checkpoint-2" / "model.safetensors")
    # the same names as save_pretrained of a from_pretrained model (released layout)
    assert set(export) == set(load_file(toy / "init" / "model.safetensors"))
    start = vlm.load_model(str(toy / "init")).state_dict()  # under the model's own names, as the float32 weights
    end = load_file(out / "checkpoint-2" / "master_weights.safetensors")
    name = "model.visual.patch_embed.proj.weight"
    assert end[name].dtype == torch.float32 and export["visual.patch_embed.proj.weight"].dtype == torch.bfloat16
    assert (end[name] != start[name]).float().mean() > 0.9


def test_freeze_vision_keeps_the_vision_tower_as_loaded(toy, tmp_path):
    """--freeze-vision true: one SFT step moves the language model and leaves every vision weight bit-identical."""
    out = tmp_path / "frozen"
    run([sys.executable, "train.py", "--model", str(toy / "init"), "--data", str(toy / "data" / "train.jsonl"),
         "--out", str(out), "--mode", "sft", "--steps", "1", "--batch_size", "2", "--pack_prompts", "2",
         "--max_frames", "4", "--dtype", "float32", "--lr", "1e-3", "--save_every", "1", "--freeze-vision", "true"],
        cwd=ROOT)
    start = vlm.load_model(str(toy / "init")).state_dict()  # under the model's own names, as the float32 weights
    end = load_file(out / "checkpoint-1" / "master_weights.safetensors")
    vision = [name for name in start if name.startswith("model.visual.")]
    assert vision and all(torch.equal(start[name], end[name]) for name in vision)
    assert not torch.equal(start["lm_head.weight"], end["lm_head.weight"])


def test_sft_mode_lowers_the_loss(warm):
    """SFT on the ground-truth targets: the NLL falls as the steps go."""
    losses = [m["loss"] for m in metrics(warm)]
    assert sum(losses[-5:]) / 5 < 0.3 * losses[0], losses


def test_toy_default_scaled_down_two_seeds_side_by_side(tmp_path):
    """`python train.py` with no --model is the toy default: here 2 seeds of a short run, each in its own process.
    Each seed pre-trains on the 36 train clips' captions, then SFT on the labelled part, then GRPO, which logs the
    held-out test reward (every 25 steps and at the last); its curves are drawn, and the table holds every seed's
    gain and their spread."""
    out = tmp_path / "toy"
    proc = run([sys.executable, "train.py", "--out", str(out), "--toy_n", "48", "--toy_labelled", "24",
                "--toy_pretrain_steps", "20", "--toy_sft_steps", "60", "--toy_grpo_steps", "4", "--toy_seeds", "2"],
               cwd=ROOT)
    for seed in (0, 1):
        tested = [m["step"] for m in metrics(out / f"seed-{seed}" / "grpo") if "test/reward" in m]
        assert tested == [4] and (out / f"seed-{seed}" / "grpo" / "curves.png").exists()
        log = (out / f"seed-{seed}" / "log.txt").read_text()
        assert "sft: 36 rows" in log and "sft: 24 rows" in log  # the captions, then the labelled part only
        assert len(metrics(out / f"seed-{seed}" / "base")) == 20
    table = proc.stdout.split("gain per seed")[1]
    assert "test reward" in table and "(spread" in table and "2 seeds in" in proc.stdout
    assert "(chance 0.25)" in table and "whole clip" in table  # what video-blind answers score, under each metric


def test_held_out_test_reward_every_n_steps_in_the_log_and_the_curves(toy, warm, tmp_path):
    """--test-data with --eval-every 2 over 5 steps: the held-out split is answered greedily at steps 2, 4 and 5 (the
    last), its metrics logged as test/... beside the training ones, and curves.png drawn from them."""
    out = tmp_path / "tested"
    test_file = toy / "data" / "test.jsonl"
    run([sys.executable, "train.py", *grpo_args(toy, out, "--steps", "5", "--save-every", "5", "--eval-every", "2",
                                                "--test-data", str(test_file))], cwd=ROOT)
    rows = metrics(out)
    assert [r["step"] for r in rows if "test/reward" in r] == [2, 4, 5]
    n_test = len((test_file).read_text().splitlines())
    assert all(r["test/n_rows"] == n_test and 0 <= r["test/reward"] <= 1 for r in rows if "test/reward" in r)
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_unreadable_video_is_skipped_counted_and_named(toy, warm, tmp_path):
    """A corrupt mp4 in the training set: its sample is skipped (the next row takes its place), counted in
    metrics.jsonl and named on stderr; training goes on."""
    rows = [json.loads(line) for line in open(toy / "data" / "train.jsonl")]
    for row in rows:
        row["video"] = str(toy / "data" / row["video"])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    rows[0]["video"] = str(broken)
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    proc = run([sys.executable, "train.py", "--model", str(warm / "checkpoint-60"), "--data", str(train_file),
                "--out", str(out), "--mode", "sft", "--steps", "3", "--batch_size", "3", "--pack_prompts", "3",
                "--max_frames", "4", "--dtype", "float32", "--save_every", "3", "--seed", "1"], cwd=ROOT)
    assert rows[0]["id"] in proc.stderr
    assert metrics(out)[-1]["skipped_samples"] >= 1 and len(metrics(out)) == 3


def test_non_finite_loss_skips_the_update(toy, warm, tmp_path):
    """A NaN loss (forced here by patching grpo.policy_loss) never reaches the weights: the update is skipped
    with a warning and the checkpoint equals the starting weights."""
    out = tmp_path / "nan"
    script = (
        "import sys, grpo, train\n"
        "orig = grpo.policy_loss\n"
        "grpo.policy_loss = lambda *a, **k: (lambda l, s: (l * float('nan'), s))(*orig(*a, **k))\n"
        "train.train(train.parse_config(sys.argv[1:]))\n")
    proc = run([sys.executable, "-c", script, *grpo_args(toy, out, "--steps", "2", "--save_every", "2")], cwd=ROOT)
    assert "update skipped" in proc.stderr
    assert [m["update_skipped"] for m in metrics(out)] == [1.0, 1.0]
    start = load_file(warm / "checkpoint-60" / "model.safetensors")
    end = load_file(out / "checkpoint-2" / "model.safetensors")
    assert all(torch.equal(start[k], end[k]) for k in start)


def test_every_entry_point_takes_dashes_and_underscores_alike():
    """One flag convention (dashes) for train, select_data and eval; the underscore spelling is accepted too."""
    import video
    import eval as ev
    import select_data as sd
    import train

    for spelling in ("--max-new-tokens", "--max_new_tokens"):
        assert train.parse_config([spelling, "7", "--batch-size", "2"]).max_new_tokens == 7
        assert sd.parse_args(["--model", "m", "--data", "d", "--out", "o", spelling, "7"]).max_new_tokens == 7
        assert ev.parse_args(["--model", "m", "--data", "d", spelling, "7"]).max_new_tokens == 7
    assert train.parse_config(["--grad-checkpointing", "true"]).grad_checkpointing is True
    for limits in (["--max-text-chars", "5", "--max-prompt-tokens", "9"],
                   ["--max_text_chars", "5", "--max_prompt_tokens", "9"]):
        for parsed in (train.parse_config(limits), ev.parse_args(["--model", "m", "--data", "d", *limits]),
                       sd.parse_args(["--model", "m", "--data", "d", "--out", "o", *limits])):
            assert (parsed.max_text_chars, video.video_config(parsed).max_prompt_tokens) == (5, 9)


def test_corrupt_videos_are_skipped_past_the_spares_and_only_all_failing_stops(toy_dir, toy_tok, tmp_path):
    """Rows that carry `duration` are not probed at load, so a corrupt video shows when its batch is drawn: it is
    skipped and the batch walks on, however many spares that takes (4 corrupt rows before the good one here); only
    a data set where every row fails stops the run, with a failure named."""
    import data
    import train

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    rows = schema.load_jsonl(str(toy_dir / "train.jsonl"))  # 5 rows, each with its duration
    corrupt = [{**row, "video": str(broken)} for row in rows]
    video_cfg, skipped = data.VideoConfig(max_frames=4), []
    (sample,) = train.take_prompts(corrupt[:4] + rows[4:], [0, 1, 2, 3, 4], 1, toy_tok, "qwen2_5_vl", video_cfg,
                                   skipped)
    assert sample.id == rows[4]["id"] and skipped == [row["id"] for row in rows[:4]]
    endless = train.prompt_indices(len(corrupt), 0, 0, 1, 0, 1)
    with pytest.raises(video.DataError, match=f"none of the 5 rows loads, e.g. {broken}"):
        train.take_prompts(corrupt, endless, 1, toy_tok, "qwen2_5_vl", video_cfg, [])
