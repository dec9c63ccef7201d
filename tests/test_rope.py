"""Qwen2.5-VL's video positions against transformers' own rule, over many (video fps, frame count, frames sampled).

A video of n frames at fps with k frames sampled has the sampled rate k * fps / n, and second_per_grid = 2 / that rate
seconds per temporal block (data.py and the Qwen processors alike). transformers' Qwen2_5_VLModel.get_rope_index, fed
second_per_grid as the processor hands it over (a float32 tensor), gives every video token its (t, h, w);
rope_positions must give each video token the same. The text after a video is not compared: there the two rules
differ on purpose (rope_positions continues at max + 1, as the released checkpoints were trained).
"""

import math

import torch

import model as vlm

FPS = [10, 12, 15, 24000 / 1001, 24, 25, 30000 / 1001, 30, 50, 60000 / 1001, 60]  # NTSC rates as containers give them
FRAMES = range(16, 2000, 7)  # frames in the video
SAMPLED = (4, 8, 12, 16, 32)  # frames kept: k / 2 temporal blocks


def test_video_positions_equal_transformers_get_rope_index(toy_tok):
    """11 fps x 284 frame counts x 5 sampled counts = 15,620 videos, each a grid (k / 2, 2, 2): one merged token per
    temporal block, after 3 text tokens. All equal transformers; 40 of them would not with a float64 floor."""
    cfg = vlm.tiny_config("qwen2_5_vl", toy_tok)
    hf_model = vlm.load_model(cfg).model  # Qwen2_5_VLModel, whose get_rope_index is the reference
    V, vs, ve = cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id
    videos = [(fps, n) for fps in FPS for n in FRAMES]
    float64_off = 0
    for k in SAMPLED:
        blocks = k // 2
        ids = torch.tensor([1, 100, vs] + [V] * blocks + [ve, 102])  # [L]
        is_video = ids == V
        spg = [2 / (k * fps / n) for fps, n in videos]  # python floats, as data.py computes them
        batch = ids.expand(len(videos), -1)  # [n_videos, L]
        hf, _ = hf_model.get_rope_index(batch, is_video.int().expand_as(batch) * 2,  # token type 2 = video
                                        video_grid_thw=torch.tensor([[blocks, 2, 2]]).expand(len(videos), -1),
                                        second_per_grid_ts=torch.tensor(spg))  # [3, n_videos, L]
        for i, s in enumerate(spg):
            ours = vlm.rope_positions(ids, torch.tensor([[blocks, 2, 2]]), s, cfg)[1:, is_video]  # [3, blocks]
            assert torch.equal(ours, hf[:, i, is_video]), (videos[i], k, ours[0].tolist(), hf[0, i, is_video].tolist())
            float64_off += (ours[0] - 3).tolist() != [math.floor(t * s * 2) for t in range(blocks)]
    assert float64_off == 40
