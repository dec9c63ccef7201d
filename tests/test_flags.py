"""Every command's flags as worked examples: a bad value is refused when parsed, before anything loads, with the
flag named; booleans are bare switches or true/false spellings; --help shows every default; a library module run
as a command says it is not one."""

import os
import re
import subprocess
import sys

import pytest

import bench
import config
import flags
import convert
import eval as evaluation
import exercises
import reproduce
import select_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {  # command -> its parser run on argv (required flags filled in)
    "train.py": config.parse_config,
    "eval.py": lambda argv: evaluation.parse_args(["--model", "m", "--data", "d", *argv]),
    "select_data.py": lambda argv: select_data.parse_args(["--model", "m", "--data", "d", "--out", "o", *argv]),
    "reproduce.py": reproduce.parse_args,
    "bench.py": bench.main,
}

BAD_FLAGS = [  # (command, flags, the flag the error must name)
    ("train.py", ["--mode", "foo"], "--mode"),
    ("train.py", ["--schedule", "linear"], "--schedule"),
    ("train.py", ["--aggregate", "mean"], "--aggregate"),
    ("train.py", ["--reward", "both"], "--reward"),
    ("train.py", ["--dtype", "float16"], "--dtype"),
    ("train.py", ["--save-every", "0"], "--save-every"),
    ("train.py", ["--pack-prompts", "0"], "--pack-prompts"),
    ("train.py", ["--max-new-tokens", "0"], "--max-new-tokens"),
    ("train.py", ["--keep-last", "0"], "--keep-last"),  # used to keep every checkpoint
    ("train.py", ["--batch-size", "0"], "--batch-size"),  # used to hang in take_prompts
    ("train.py", ["--batch-size", "3", "--pack-prompts", "2"], "--pack-prompts"),
    ("train.py", ["--temperature", "0"], "--temperature"),  # GRPO rollouts at temperature 0: NaN losses
    ("train.py", ["--group-size", "1"], "--group-size"),
    ("train.py", ["--steps", "0"], "--steps"),
    ("train.py", ["--lr", "-0.001"], "--lr"),
    ("train.py", ["--lr", "nan"], "--lr"),
    ("train.py", ["--beta", "-0.01"], "--beta"),
    ("train.py", ["--clip-low", "1"], "--clip-low"),
    ("train.py", ["--clip-high", "-0.2"], "--clip-high"),
    ("train.py", ["--top-p", "0"], "--top-p"),
    ("train.py", ["--top-p", "1.5"], "--top-p"),
    ("train.py", ["--fps", "0"], "--fps"),
    ("train.py", ["--min-frames", "0"], "--min-frames"),
    ("train.py", ["--max_frames", "0"], "--max-frames"),
    ("train.py", ["--seed", "-1"], "--seed"),
    ("train.py", ["--eval-every", "-1"], "--eval-every"),
    ("train.py", ["--dist-timeout-minutes", "0"], "--dist-timeout-minutes"),
    ("train.py", ["--toy-n", "3"], "--toy-n"),
    ("train.py", ["--skip-bad", "2"], "--skip-bad"),  # used to become False
    ("train.py", ["--freeze-vision", "y"], "--freeze-vision"),
    ("select_data.py", ["--group-size", "0"], "--group-size"),
    ("select_data.py", ["--group-size", "1"], "--group-size"),  # one completion never varies: nothing would be kept
    ("select_data.py", ["--batch-size", "0"], "--batch-size"),
    ("select_data.py", ["--top-n", "-1"], "--top-n"),  # used to keep all but one
    ("select_data.py", ["--top-n", "0"], "--top-n"),
    ("select_data.py", ["--temperature", "0"], "--temperature"),
    ("select_data.py", ["--max-new-tokens", "0"], "--max-new-tokens"),
    ("select_data.py", ["--min-iou-std", "-0.1"], "--min-iou-std"),
    ("select_data.py", ["--video-tokens", "0"], "--video-tokens"),
    ("select_data.py", ["--dtype", "fp8"], "--dtype"),
    ("eval.py", ["--batch-size", "0"], "--batch-size"),
    ("eval.py", ["--temperature", "-1"], "--temperature"),
    ("eval.py", ["--max-new-tokens", "0"], "--max-new-tokens"),
    ("eval.py", ["--frame-min-tokens", "0"], "--frame-min-tokens"),
    ("eval.py", ["--max-prompt-tokens", "0"], "--max-prompt-tokens"),
    ("eval.py", ["--dist-timeout-minutes", "-5"], "--dist-timeout-minutes"),
    ("reproduce.py", ["--seeds", "0"], "--seeds"),  # used to run 3
    ("reproduce.py", ["--seeds", "1"], "--seeds"),  # one seed has no spread to judge a verdict by
    ("reproduce.py", ["--quick", "maybe"], "--quick"),
    ("reproduce.py", ["--steps", "0"], "--steps"),  # B steps per arm: at least one
    ("bench.py", ["--repeats", "0"], "--repeats"),
    ("bench.py", ["--layers", "0"], "--layers"),
    ("bench.py", ["--G", "4", "0"], "--G"),
    ("bench.py", ["--dtype", "half"], "--dtype"),
]


@pytest.mark.parametrize("command, flags, named", BAD_FLAGS, ids=[f"{c} {' '.join(f)}" for c, f, _ in BAD_FLAGS])
def test_a_bad_flag_is_refused_when_parsed_naming_the_flag(command, flags, named, capsys, monkeypatch):
    """The command stops at parsing (argparse's exit status 2) and its one-line error names the flag."""
    def accepted(*args, **kwargs):
        raise AssertionError(f"{command} {' '.join(flags)} was accepted")
    monkeypatch.setattr(bench, "bench_config", accepted)  # bench.py would get to work on a flag it took
    with pytest.raises(SystemExit) as stop:
        COMMANDS[command](flags)
    error = capsys.readouterr().err.splitlines()[-1]
    assert stop.value.code == 2 and named in error, error


@pytest.mark.parametrize("flags", [["--data", "train.jsonl", "--mode", "sft"], ["--test-data", "test.jsonl"]])
def test_train_refuses_data_flags_without_a_model(flags, capsys):
    """Without --model train.py runs the toy default, which builds its own model and data: flags that only a real
    run reads are refused, naming them and --model, instead of being ignored."""
    with pytest.raises(SystemExit):
        config.parse_config(flags)
    error = capsys.readouterr().err
    assert "--model" in error and flags[0] in error
    assert config.parse_config(["--model", "m", *flags]).model == "m"


def test_booleans_are_bare_switches_or_true_false_spellings():
    """A bare boolean flag is true; a value may be true/false, 1/0, yes/no or on/off in any case."""
    assert config.parse_config(["--overwrite", "--steps", "3"]).overwrite is True
    cfg = config.parse_config(["--freeze-vision", "ON", "--skip_bad", "Yes", "--scale-advantages", "0",
                               "--grad-checkpointing", "1"])
    assert (cfg.freeze_vision, cfg.skip_bad, cfg.scale_advantages, cfg.grad_checkpointing) == (True, True, False, True)
    assert config.parse_config(["--overwrite", "off"]).overwrite is False
    assert config.parse_config([]).scale_advantages is True  # a default stays as it is
    assert reproduce.parse_args(["--quick"]).quick is True
    assert reproduce.parse_args(["--quick", "false", "--seeds", "2"]).quick is False
    assert [flags.boolean(s) for s in ("TRUE", "no", "On", "0")] == [True, False, True, False]


HELP = [  # (command, argv for --help, flags that must be given and so have no default)
    ("train.py", ["--help"], ()),
    ("eval.py", ["--help"], ("--model", "--data")),
    ("select_data.py", ["--help"], ("--model", "--data", "--out")),
    ("reproduce.py", ["--help"], ()),
    ("bench.py", ["--help"], ()),
    ("convert.py", ["--help"], ("--from",)),
    ("exercises.py", ["start", "--help"], ()),
]


@pytest.mark.parametrize("command, argv, required", HELP, ids=[h[0] for h in HELP])
def test_help_shows_every_default(command, argv, required, capsys):
    """In `--help`, every flag's entry ends with its default, except those that must be given."""
    run = {**COMMANDS, "convert.py": convert.main, "exercises.py": exercises.main}[command]
    with pytest.raises(SystemExit):
        run(argv)
    text = capsys.readouterr().out.split("options:", 1)[1]
    entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", text) if e.strip().startswith("-")]
    flags = [e for e in entries if not e.startswith(("-h", *required))]
    assert flags and all("(default: " in e for e in flags), [e for e in flags if "(default: " not in e]


LIBRARY = ["rewards", "video", "model", "grpo", "checkpoint", "data", "attention", "run_folder", "distributed",
           "config", "metrics", "selection_log", "schema", "toy", "flags"]


@pytest.mark.parametrize("module", LIBRARY)
def test_a_library_module_run_as_a_command_says_so(module):
    """`python rewards.py` (and the like) exits non-zero with one line naming the commands, instead of exiting 0
    having done nothing; data.py says where its old toy and convert subcommands went."""
    proc = subprocess.run([sys.executable, f"{module}.py", "toy"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode != 0
    assert f"{module}.py is a library module, not a command" in proc.stderr and "train.py" in proc.stderr
    assert module != "data" or "convert.py" in proc.stderr
    assert module != "toy" or "toy.make_toy" in proc.stderr  # and how to write the toy dataset alone
