"""The shape of the code, as the README's architecture section states it: the commands are leaves (no command
imports another), the model layer knows nothing of the toy world, and one GRPO step reads top to bottom."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in ROOT.glob("*.py")}


def imported(tree):
    """The names of the repo's modules a module imports (import x, import x as y, from x import z)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names & set(MODULES)


def is_command(tree):
    """A command runs something under `if __name__ == "__main__":`; a library module only raises SystemExit there,
    saying it is not one."""
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return not all(isinstance(stmt, ast.Raise) for stmt in node.body)
    return False


def test_no_command_imports_another():
    """train, eval, select_data, reproduce, convert, bench and exercises are commands; each imports libraries only
    (reproduce runs train.py and select_data.py as processes, train.py scores with metrics.py, not eval.py)."""
    commands = {name for name, tree in MODULES.items() if is_command(tree)}
    assert {"train", "eval", "select_data", "reproduce", "convert", "bench", "exercises"} <= commands
    offenders = {name: sorted(imported(MODULES[name]) & commands) for name in MODULES}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_model_layer_does_not_know_the_toy():
    """model.py, attention.py, grpo.py and rewards.py import nothing of the toy world (a tiny config takes any
    tokenizer)."""
    for name in ("model", "attention", "grpo", "rewards"):
        assert "toy" not in imported(MODULES[name]), name


def test_grpo_step_reads_top_to_bottom():
    """train.grpo_step defines no function inside itself: rollout, rewards, advantages, pack, log-probs, loss and
    step are written out in order."""
    step = next(n for n in MODULES["train"].body if isinstance(n, ast.FunctionDef) and n.name == "grpo_step")
    nested = [n for n in ast.walk(step) if isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not step]
    assert nested == []
