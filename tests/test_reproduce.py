"""reproduce.py: how a verdict is computed from per-seed differences, and the quick run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import reproduce
import toy

ROOT = Path(__file__).resolve().parent.parent


def test_verdict_worked_examples():
    # d = a - b per seed; standard error = std(d, ddof=1) / sqrt(3)
    assert reproduce.verdict([0.10, 0.12, 0.11], "better") == "holds"  # mean 0.11, se 0.006: 0.11 - 0.012 > 0
    assert reproduce.verdict([-0.10, -0.12, -0.11], "better") == "does not hold"
    assert reproduce.verdict([0.10, -0.10, 0.05], "better") == "within noise"  # mean 0.017, se 0.06
    assert reproduce.verdict([0.01, 0.20, 0.02], "better") == "within noise"  # all above zero, but se 0.06 > mean/2
    assert reproduce.verdict([0.01, -0.02, 0.02], "no worse") == "holds"  # mean +0.003, within noise: no worse
    assert reproduce.verdict([-0.10, -0.12, -0.11], "no worse") == "does not hold"
    assert reproduce.verdict([0.3], "better") == "within noise"  # one seed has no spread to judge by


def test_no_worse_is_not_said_of_an_arm_behind_on_average():
    """A "no worse" claim whose differences lie below zero on average is not said to hold: within noise it is
    "not shown worse", clearly below it "does not hold"; "holds" needs a mean of zero or above."""
    assert reproduce.verdict([-0.5], "no worse") == "not shown worse"  # one seed: no spread, so within noise
    assert reproduce.verdict([-0.4, 0.3, -0.2], "no worse") == "not shown worse"  # mean -0.1, se 0.21
    assert reproduce.verdict([0.01, -0.02, 0.00], "no worse") == "not shown worse"  # mean -0.003, se 0.009
    assert reproduce.verdict([-0.5, -0.6, -0.55], "no worse") == "does not hold"  # mean -0.55, se 0.03
    assert reproduce.verdict([0.0, 0.0, 0.0], "no worse") == "holds"  # exactly level


def test_steps_to_reach_worked_example():
    """The all-rows arm ends at test reward 0.70; an arm that scores 0.60, 0.72, 0.69, 0.75 at steps 10-40 reaches
    it at step 20 (the first measure at or above it, a later dip does not matter); one that stays below never does."""
    assert reproduce.steps_to_reach([[10, 0.60], [20, 0.72], [30, 0.69], [40, 0.75]], 0.70) == 20
    assert reproduce.steps_to_reach([[10, 0.70]], 0.70) == 10  # equal counts as reached
    assert reproduce.steps_to_reach([[10, 0.50], [20, 0.69]], 0.70) is None
    assert reproduce.eval_every(50) == 10 and reproduce.eval_every(8) == 1


def test_table_verdicts_come_from_the_numbers():
    def seed(grpo, sft):
        arm = lambda reward, miou=0.5: {"test": {"reward": reward, "tvg/mIoU": reward - 0.2, "gqa/accuracy": 0.5,
                                                 "gqa/mIoU": miou}, "ood": {"reward": reward - 0.1, "tvg/mIoU": reward - 0.3}}
        curves = {"grpo": [[4, grpo - 0.1], [8, grpo]], "selected": [[4, grpo], [8, grpo]],
                  "random": [[4, grpo - 0.2], [8, grpo - 0.1]], "online": [[4, grpo - 0.1], [8, grpo]]}
        return {"warm": arm(0.6), "grpo": arm(grpo), "sft": arm(sft), "selected": arm(grpo), "random": arm(grpo),
                "online": arm(grpo), "answer_only": arm(grpo, miou=0.3), "rows": (10, 30), "curves": curves}
    text = reproduce.table([seed(0.8, 0.7), seed(0.82, 0.7), seed(0.79, 0.71)], minutes=1.0, steps=8)
    assert ("| 1. RL vs SFT | reward (test) | grpo | sft (better) | 0.803 | 0.703 | +0.100 +0.120 +0.080 | holds |"
            in text)
    assert "| 2. data efficiency | reward (test) | selected | random (better) | 0.803 | 0.803 |" in text
    assert "| 3. dual reward | gqa/mIoU (test) | grpo | answer_only (better) | 0.500 | 0.300 |" in text
    claims = text.split("| claim | verdict |")[1]
    assert "| 1. RL vs SFT | holds |" in claims and "| 3. dual reward | holds |" in claims
    assert "| 2. data efficiency | within noise |" in claims  # selected = random exactly: no gain shown
    # steps to reach the all-rows arm's final test reward: selected gets there at the first eval, random never
    assert "| selected | 4 4 4 | 3 of 3 | 4 |" in text and "| random | - - - | 0 of 3 | - |" in text
    assert "| all | 8 8 8 | 3 of 3 | 8 |" in text


def test_quick_run_writes_table_and_figure(tmp_path):
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "reproduce.py", "--quick", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / "table.md").read_text()
    claims, reach = text.split("Steps to reach")
    verdicts = [line.strip("| ").rsplit(" | ", 1)[-1] for line in claims.splitlines()
                if line.startswith("| ") and "---" not in line and not line.startswith("| claim")]
    assert len(verdicts) == len(reproduce.COMPARISONS) + 3
    assert set(verdicts) <= {"holds", "does not hold", "within noise", "not shown worse"}
    assert [line.split(" | ")[0] for line in reach.splitlines() if line.startswith("| ") and "---" not in line] \
        == ["| arm", "| all", "| selected", "| random", "| online"]
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2 and set(reproduce.ARMS) <= set(results[0])
    kept, rows = results[0]["rows"]
    assert 0 < kept <= rows // 2  # the selected subset is at most half of the rows
    sampled = json.loads((out / "seed-0" / "selected.report.json").read_text())["settings"]
    assert (sampled["group_size"], sampled["temperature"]) == (toy.TOY_GRPO["group_size"], toy.TOY_GRPO["temperature"])
    assert (out / "claims.png").stat().st_size > 0
    assert [step for step, _ in results[0]["curves"]["selected"]] == list(range(1, 9))  # B = 8: scored every step
