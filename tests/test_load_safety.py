"""What a --model folder must be before anything loads, as worked examples: a folder that would run code of its own
(an `auto_map` in its config.json, which transformers offers to execute), a text-only model and pickled weights
are each refused with one message saying what the folder is and what to pass instead. Nothing in the folder runs."""

import json
import os
import subprocess
import sys

import pytest

import model as vlm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def planted(folder, marker, model_type):
    """A checkpoint folder whose config.json points transformers at evil.py, a file that, imported, writes
    `marker` (what an attacker's code would do instead)."""
    folder.mkdir()
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                    "from transformers import PretrainedConfig\n"
                                    "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": model_type, "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}}))
    return folder


@pytest.mark.parametrize("model_type", ["evil", "qwen2_5_vl"])
def test_a_planted_folder_with_auto_map_is_refused_by_eval_without_a_prompt_and_its_code_never_runs(
        tmp_path, toy_dir, model_type):
    """`python eval.py --model DIR` on a folder whose config.json has an auto_map (with an unknown model_type, or
    even a supported one): the command exits non-zero with a message naming the folder and the auto_map, asks
    nothing (stdin is closed: a prompt would read EOF), and the planted file is never imported."""
    marker = tmp_path / "marker"
    folder = planted(tmp_path / "ckpt", marker, model_type)
    proc = subprocess.run([sys.executable, "eval.py", "--model", str(folder), "--data", str(toy_dir / "test.jsonl"),
                           "--out", str(tmp_path / "eval.json")], cwd=ROOT, env=ENV, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"refused to load {folder}: its config.json's `auto_map` names Python code" in proc.stderr
    assert "never runs code from a checkpoint folder" in proc.stderr
    assert "[y/N]" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_a_text_only_checkpoint_is_named_as_such(tmp_path):
    """A Qwen2.5 text model (model_type qwen2) is not a video model: the message says so and names what to pass,
    instead of transformers' KeyError: 'qwen2'."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    with pytest.raises(vlm.ModelFolderError, match=r"is a text-only model \(model_type 'qwen2'\): vrl trains video "
                                                   r"models and needs a Qwen2.5-VL or Qwen3-VL checkpoint"):
        vlm.load_model(str(tmp_path))


def test_an_unknown_model_type_is_refused(tmp_path):
    """A model_type outside the supported families (and no auto_map) is refused before transformers sees it."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(vlm.ModelFolderError, match="model_type 'llava' is not a supported family"):
        vlm.require_folder(str(tmp_path))


def test_pickled_weights_are_refused_with_the_way_to_convert_them(tmp_path, toy_tok):
    """A folder whose weights are a pickle (pytorch_model.bin) and no safetensors: refused before torch would read
    it (a pickle can run code), with the advice to convert it to safetensors, not torch's to re-run with
    weights_only=False."""
    config = vlm.tiny_config("qwen2_5_vl", toy_tok)
    config.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04planted")
    with pytest.raises(vlm.ModelFolderError, match=r"stores its weights as pickles \(pytorch_model.bin\), which can "
                                                   r"run code when read: refused. Convert them to safetensors"):
        vlm.load_model(str(tmp_path))
