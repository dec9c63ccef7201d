"""Speed on video, side by side in one run: our shared-prompt paths against the G-copies path of TRL, verl, EasyR1.

    python bench.py                # CPU: widened tiny Qwen2.5-VL, P 256/512/1024, C 32/64, G 4/8: ~80 s on 2 cores
    python bench.py --device cuda  # CUDA: Qwen2.5-VL-7B shape, random weights, bf16, 4 LM + 4 vision layers

Training step (forward + backward of the per-token log-probs of G completions of one video prompt):
    naive   G right-padded copies [prompt, c_g] through the plain Hugging Face forward (SDPA), a batch of G: the
            vision tower and the prompt run G times. Explicit positions from model.rope_positions; the LM head
            only on the positions that predict completion tokens, through the same chunked head as ours (so the
            ratio measures prompt sharing alone; the peers' full [G, C, vocab] logits would cost them more).
    packed  model.completion_logprobs of one packed row [prompt, c_1 .. c_G]: vision tower and prompt once.
    Both run the vision tower with our attention (one varlen call per block on CUDA, as the peers' flash-attn does).
Rollouts (greedy, EOS never fires, both produce exactly G x C tokens):
    generate  HF generate(num_return_sequences=G): vision once, the prompt prefilled G times, G decoded together.
    ours      model.sample: prefill once, KV cache forked G ways, G decoded together.
Ideal ratio = tokens through the LM's MLPs, G(P+C) / (P+GC); the measured one can pass it, since the naive path
also runs the vision tower G times and its attention is quadratic in P+C per copy. Every row compares packed and
naive per-token log-probs (float32: max abs <= 1e-4; bf16/fp16: mean abs <= 0.02 and max <= 0.5). In float32 on CPU
both paths are exact to that, and a row past it raises, so a fast wrong path posts no number; elsewhere (bf16, or
TF32 convolutions on CUDA) a row past it is reported with its difference and the sweep goes on.
Out of memory: torch.OutOfMemoryError, or a RuntimeError saying "out of memory" or "alloc failed" (cuBLAS, cuDNN and
flash-attn report allocation failures so); on CUDA the path's cell says so and the sweep goes on.
Timing: one warm-up (which also gives the outputs checked and the memory), then the median of --repeats, the two
paths interleaved. Memory: CUDA, peak allocated during the step above what was allocated before it (weights and
gradient buffers, allocated beforehand as in any step after a training loop's first); CPU, bytes of
the tensors autograd saves for backward (weights excluded), roughly what a step holds at its peak. On a shared CPU,
another job on the same cores can slow rows 10x (thread oversubscription): run on a quiet machine or with --threads 1.
"""

import argparse
import gc
import json
import statistics
import time

import torch
from transformers import Qwen2_5_VLConfig
from transformers.utils import logging as hf_logging

import attention
import data
from config import DTYPES
from flags import add_switch, positive_int
import model as vlm
import toy

SHAPES = {  # (text, vision, patches per frame side). Real 7B vision: 32 blocks (4 full attention), hidden 1280
    "tiny-wide": (dict(hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_key_value_heads=2,  # hd 64
                       rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=[8, 12, 12])),
                  dict(hidden_size=128, intermediate_size=256, num_heads=2, out_hidden_size=256), 8),
    "7b": (dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                vocab_size=152064, max_position_embeddings=128000, rms_norm_eps=1e-6,  # hd 128
                rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=[16, 24, 24])),
           dict(hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584), 16),
}
MIN_TEXT = 16  # text tokens around the video in every prompt; the rest of P is video


def bench_config(shape, layers, vision_layers):
    """The real Qwen2.5-VL config class with the toy tokenizer's special ids (0-6), resized to SHAPES[shape]."""
    base = vlm.tiny_config("qwen2_5_vl", toy.toy_tokenizer())
    text, vision, _ = SHAPES[shape]
    text = {**base.text_config.to_dict(), **text, "num_hidden_layers": layers, "layer_types": None}
    vision = {**base.vision_config.to_dict(), **vision, "depth": vision_layers,
              "fullatt_block_indexes": [vision_layers - 1]}  # windowed blocks, the last one full attention
    ids = {k: getattr(base, k) for k in ("video_token_id", "image_token_id", "vision_start_token_id",
                                         "vision_end_token_id")}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)


def make_group(config, P, C, G, side, dtype, seed=0):
    """A Sample of exactly P prompt tokens, video tokens the most (frames of side x side patches, (side/2)^2 tokens
    per temporal block), random pixels; and G random completions of C tokens. -> (Sample, [G x LongTensor [C]])."""
    per_block = (side // 2) ** 2
    n_video = (P - MIN_TEXT) // per_block * per_block
    if n_video <= 0:
        raise ValueError(f"P={P} leaves no room for a video block of {per_block} tokens")
    g = torch.Generator().manual_seed(seed)
    text = lambda n: torch.randint(7, config.text_config.vocab_size, (n,), generator=g)  # any non-special id
    prompt = torch.cat([torch.tensor([1]), text(4), torch.tensor([config.vision_start_token_id]),  # [P]
                        torch.full((n_video,), config.video_token_id), torch.tensor([config.vision_end_token_id]),
                        text(P - n_video - 8), torch.tensor([1])])
    t = n_video // per_block  # temporal blocks of 2 frames each
    patch = config.vision_config.patch_size
    sample = data.Sample(id=f"bench{seed}", row={}, prompt_ids=prompt, grid_thw=torch.tensor([[t, side, side]]),
                         pixel_values=torch.randn(t * side * side, 3 * 2 * patch * patch, generator=g).to(dtype),
                         second_per_grid=1.0)
    return sample, [text(C) for _ in range(G)]


def naive_inputs(sample, completions, config, pad):
    """G right-padded copies [prompt, c]: (forward inputs: ids [G, L], mask [G, L], positions [4, G, L], the video
    G times), targets [G, Cmax], keep [G, Cmax] (real completion tokens)."""
    L = len(sample.prompt_ids) + max(map(len, completions))
    ids, mask = torch.full((len(completions), L), pad), torch.zeros(len(completions), L, dtype=torch.long)
    pos = torch.zeros(4, len(completions), L, dtype=torch.long)
    for g, c in enumerate(completions):
        seq = torch.cat([sample.prompt_ids, c])
        ids[g, :len(seq)], mask[g, :len(seq)] = seq, 1
        pos[:, g, :len(seq)] = vlm.rope_positions(seq, sample.grid_thw, sample.second_per_grid, config)
    targets = torch.nn.utils.rnn.pad_sequence(completions, batch_first=True, padding_value=pad)  # [G, Cmax]
    return dict(input_ids=ids, attention_mask=mask, position_ids=pos,
                pixel_values_videos=sample.pixel_values.repeat(len(completions), 1),  # the video G times
                video_grid_thw=sample.grid_thw.repeat(len(completions), 1)), targets, targets != pad


def naive_logprobs(model, inputs, targets, keep):
    """What the peers run: the plain forward of the G copies. -> [T] flat, completion-major like completion_logprobs."""
    hidden = model.model(**inputs).last_hidden_state  # [G, L, D]
    P = hidden.shape[1] - targets.shape[1]
    predictors = hidden[:, P - 1:-1]  # [G, Cmax, D]: the positions P-1 .. L-2 predict the completion
    return vlm.lm_head_logprobs(model.lm_head, predictors[keep], targets[keep])


def use_attention(model, name):
    """Switch the language model between HF's own SDPA (naive, generate) and our shared-prefix attention."""
    model.set_attn_implementation({"text_config": name})


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fn, model, device, memory):
    """One forward + backward of fn() -> [T] log-probs: (seconds, memory bytes or None, log-probs detached)."""
    model.zero_grad(set_to_none=False)  # gradient buffers stay allocated (train_row makes them)
    saved, weights = {}, {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack_hook(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:
            saved[ptr] = t.untyped_storage().nbytes()
        return t
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    sync(device)
    start = time.perf_counter()
    if memory and device.type == "cpu":
        with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
            logp = fn()
    else:
        logp = fn()
    logp.sum().backward()
    sync(device)
    seconds = time.perf_counter() - start
    mem = torch.cuda.max_memory_allocated() - before if device.type == "cuda" else sum(saved.values())
    return seconds, (mem if memory or device.type == "cuda" else None), logp.detach().float()


def timed(fns, repeats, device, on_oom):
    """Interleaved: warm-up of every fn, then repeats rounds. fns: {name: () -> (seconds, mem, output)}.
    -> {name: (median seconds, mem, warm-up output)} with None for a path that ran out of memory."""
    out, times = {}, {name: [] for name in fns}
    for r in range(repeats + 1):
        for name, fn in fns.items():
            if r and out[name] is None:
                continue
            try:
                seconds, mem, result = fn(r == 0)
            except RuntimeError as error:  # torch.OutOfMemoryError is one
                if not (on_oom and out_of_memory(error)):
                    raise
                out[name] = seconds = None
            if seconds is None:  # out of the except block, so the traceback's tensors are gone too
                gc.collect(), torch.cuda.empty_cache()
                continue
            if r == 0:
                out[name] = [mem, result]
            else:  # CUDA: the memory of the last run (the warm-up's has one-time allocations)
                times[name].append(seconds)
                out[name][0] = mem if mem is not None else out[name][0]
    return {n: None if out[n] is None else (statistics.median(times[n]), *out[n]) for n in fns}


def out_of_memory(error):
    """An allocation failure, however the library that failed words it."""
    message = str(error).lower()
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in message or \
        ("alloc" in message and "failed" in message)


def check_equal(ours, ref, dtype, strict):
    """Packed log-probs against the naive ones, per token. -> (max abs, mean abs, within tolerance); strict (float32
    on CPU): raises past the tolerance instead."""
    if ours.shape != ref.shape:
        raise AssertionError(f"packed log-probs have shape {tuple(ours.shape)}, the plain forward {tuple(ref.shape)}")
    diff = (ours - ref).abs()
    worst, mean = float(diff.max()), float(diff.mean())
    ok = worst <= 1e-4 if dtype == torch.float32 else (mean <= 0.02 and worst <= 0.5)
    if strict and not ok:
        raise AssertionError(f"packed log-probs differ from the plain forward: max abs {worst:.3g}, mean {mean:.3g}")
    return worst, mean, ok


def fmt_mem(b):
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB"


def ms(seconds):
    return "out of memory" if seconds is None else f"{seconds * 1e3:.1f} ms"


def ratio(a, b):
    return f"×{a / b:.2f}" if a and b else ""


def train_row(model, config, sample, completions, repeats, device, dtype):
    """Naive vs packed forward + backward on one group, checked equal. -> row dict."""
    pad = config.text_config.pad_token_id
    packed = vlm.pack([(sample, completions)], config).to(device)
    inputs, targets, keep = naive_inputs(sample, completions, config, pad)
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
    targets, keep = targets.to(device), keep.to(device)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # allocated before any measurement, as after a training loop's first step

    def naive(first):
        use_attention(model, "sdpa")
        return measure(lambda: naive_logprobs(model, inputs, targets, keep), model, device, first)

    def ours(first):
        use_attention(model, attention.ATTENTION)
        return measure(lambda: vlm.completion_logprobs(model, packed), model, device, first)
    res = timed({"naive": naive, "packed": ours}, repeats, device, on_oom=device.type == "cuda")
    model.zero_grad(set_to_none=True)
    row = {f"{n}_{k}": None if res[n] is None else res[n][i] for n in res for i, k in enumerate(("s", "mem"))}
    if res["naive"] and res["packed"]:
        strict = dtype == torch.float32 and device.type == "cpu"
        row["max_abs"], row["mean_abs"], row["within_tolerance"] = check_equal(res["packed"][2], res["naive"][2],
                                                                               dtype, strict)
    return row


@torch.no_grad()
def rollout_row(model, config, sample, G, C, repeats, device):
    """HF generate(num_return_sequences=G) vs our sample, greedy, exactly G x C new tokens each. -> row dict."""
    P, pad = len(sample.prompt_ids), config.text_config.pad_token_id
    prompt = sample.prompt_ids[None].to(device)  # [1, P]
    positions = vlm.rope_positions(sample.prompt_ids, sample.grid_thw, sample.second_per_grid, config)  # [4, P]
    gen_kw = dict(input_ids=prompt, attention_mask=torch.ones_like(prompt), position_ids=positions[:, None].to(device),
                  pixel_values_videos=sample.pixel_values.to(device), video_grid_thw=sample.grid_thw.to(device),
                  second_per_grid_ts=torch.tensor([sample.second_per_grid], device=device),
                  num_return_sequences=G, max_new_tokens=C, min_new_tokens=C, pad_token_id=pad,
                  suppress_tokens=[config.video_token_id, config.image_token_id],
                  do_sample=True, top_k=1)  # = greedy: generate refuses do_sample=False with G sequences

    def hf():
        use_attention(model, "sdpa")
        return model.generate(**gen_kw)[:, P:]  # [G, C]

    def ours():
        use_attention(model, attention.ATTENTION)
        return vlm.sample(model, [sample], G, C, temperature=0, eos_token_id=-1, pad_token_id=pad).ids  # [G, C]

    def clock(fn):
        def go(first):
            sync(device)
            start = time.perf_counter()
            ids = fn()
            sync(device)
            return time.perf_counter() - start, None, ids
        return go
    res = timed({"generate": clock(hf), "ours": clock(ours)}, repeats, device, on_oom=device.type == "cuda")
    row = {f"{n}_s": res[n] and res[n][0] for n in res}
    if res["generate"] and res["ours"]:
        if not res["ours"][2].shape == res["generate"][2].shape == (G, C):
            raise AssertionError(f"not G x C tokens: {res['ours'][2].shape}, {res['generate'][2].shape}")
        row["same_tokens"] = float((res["ours"][2] == res["generate"][2]).float().mean())
    return row


def print_tables(rows, Cs, Gs):
    print("\nTraining log-prob step (forward + backward)\n")
    print("| P (video) | C | G | G padded copies | prompt once | time ratio | ideal | memory ratio | max abs Δ logp |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in (r for r in rows if r["kind"] == "train"):
        cells = [f"{ms(r[n + '_s'])}, {fmt_mem(r[n + '_mem'])}" if r[n + "_s"] else ms(None)
                 for n in ("naive", "packed")]
        diff = f"{r['max_abs']:.1e}" if "max_abs" in r else "not compared"
        if not r.get("within_tolerance", True):
            diff += f", mean {r['mean_abs']:.1e}: past the tolerance"
        print(f"| {r['P']} ({r['video']}) | {r['C']} | {r['G']} | {cells[0]} | {cells[1]} | "
              f"{ratio(r['naive_s'], r['packed_s'])} | ×{r['ideal']:.2f} | {ratio(r['naive_mem'], r['packed_mem'])} | "
              f"{diff} |")
    if any(r["kind"] == "rollout" for r in rows):
        print("\nRollouts (greedy, G x C new tokens from one prompt)\n")
        print("| P (video) | C | G | generate(num_return_sequences=G) | prefill once, fork G | time ratio | ideal | "
              "same tokens |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in (r for r in rows if r["kind"] == "rollout"):
            same = f"{r['same_tokens']:.0%}" if "same_tokens" in r else ""
            print(f"| {r['P']} ({r['video']}) | {r['C']} | {r['G']} | {ms(r['generate_s'])} | {ms(r['ours_s'])} | "
                  f"{ratio(r['generate_s'], r['ours_s'])} | ×{r['ideal']:.2f} | {same} |")
    for C in Cs:  # where a path ran out of memory: the largest prompt each one fits
        for G in Gs:
            train = [r for r in rows if r["kind"] == "train" and (r["C"], r["G"]) == (C, G)]
            if any(r["naive_s"] is None or r["packed_s"] is None for r in train):
                fits = {n: max((r["P"] for r in train if r[n + "_s"] is not None), default=None)
                        for n in ("naive", "packed")}
                print(f"C={C} G={G}: largest P that fits: G padded copies {fits['naive']}, "
                      f"prompt once {fits['packed']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    ap.add_argument("--dtype", default=None, choices=DTYPES, help="None = bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--shape", default=None, choices=SHAPES, help="None = 7b on CUDA, tiny-wide on CPU")
    ap.add_argument("--layers", type=positive_int, default=None,
                    help="decoder layers; None = 4 on CUDA, 2 on CPU")
    ap.add_argument("--vision-layers", "--vision_layers", type=positive_int, default=None,
                    help="vision blocks; None = --layers")
    ap.add_argument("--P", type=positive_int, nargs="+", default=None,
                    help="prompt tokens, video + text; None = 1024 4096 8192 on CUDA, 256 512 1024 on CPU")
    ap.add_argument("--C", type=positive_int, nargs="+", default=None,
                    help="completion tokens; None = 256 512 on CUDA, 32 64 on CPU")
    ap.add_argument("--G", type=positive_int, nargs="+", default=None,
                    help="completions per prompt; None = 4 8 16 on CUDA, 4 8 on CPU")
    ap.add_argument("--repeats", type=positive_int, default=3, help="timed runs of each; the median is shown")
    ap.add_argument("--threads", type=positive_int, default=None, help="CPU threads; None = torch's")
    add_switch(ap, "--skip-rollout", "--skip_rollout", help="time training only, not rollouts")
    ap.add_argument("--out", default=None, help="write the rows as JSON here; None = print only")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    dtype = getattr(torch, a.dtype or ("bfloat16" if cuda else "float32"))
    shape, layers = a.shape or ("7b" if cuda else "tiny-wide"), a.layers or (4 if cuda else 2)
    Ps = a.P or ([1024, 4096, 8192] if cuda else [256, 512, 1024])
    Cs, Gs = a.C or ([256, 512] if cuda else [32, 64]), a.G or ([4, 8, 16] if cuda else [4, 8])
    if a.threads:
        torch.set_num_threads(a.threads)
    hf_logging.set_verbosity_error()

    torch.manual_seed(0)
    config = bench_config(shape, layers, a.vision_layers or layers)
    with device:  # random weights made in place (7B shape, 4 + 4 layers: 2.1 B parameters, 1.1 B of them vocab)
        model = vlm.load_model(config, dtype).eval()
    tc, vc, side = config.text_config, config.vision_config, SHAPES[shape][2]
    mem_note = "peak allocated in the step, above weights and gradients" if cuda else "saved for backward (CPU)"
    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, {dtype}; Qwen2.5-VL shape "
          f"'{shape}', random weights: LM {layers} layers, hidden {tc.hidden_size}, heads {tc.num_attention_heads}/"
          f"{tc.num_key_value_heads} kv, intermediate {tc.intermediate_size}, vocab {tc.vocab_size}; vision "
          f"{vc.depth} blocks, hidden {vc.hidden_size}; frames {side * 14}x{side * 14} px = {(side // 2) ** 2} "
          f"video tokens each 2 frames; median of {a.repeats}; memory: {mem_note}\n")

    rows = []
    for C in Cs:
        for G in Gs:
            for P in Ps:
                sample, completions = make_group(config, P, C, G, side, dtype, seed=P + C + G)
                key = dict(P=P, video=int((sample.prompt_ids == config.video_token_id).sum()), C=C, G=G,
                           ideal=G * (P + C) / (P + G * C))
                rows.append(dict(kind="train", **key, **train_row(model, config, sample, completions, a.repeats,
                                                                  device, dtype)))
                print(f"  train P={P} C={C} G={G}: naive {ms(rows[-1]['naive_s'])}, "
                      f"packed {ms(rows[-1]['packed_s'])}", flush=True)
                if not a.skip_rollout:
                    rows.append(dict(kind="rollout", **key, **rollout_row(model, config, sample, G, C, a.repeats,
                                                                          device)))
                    print(f"  rollout P={P} C={C} G={G}: generate {ms(rows[-1]['generate_s'])}, "
                          f"ours {ms(rows[-1]['ours_s'])}", flush=True)
    use_attention(model, attention.ATTENTION)
    print_tables(rows, Cs, Gs)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(dict(device=str(device), dtype=str(dtype), shape=shape, layers=layers, rows=rows), f, indent=1)
    return rows


if __name__ == "__main__":
    main()
