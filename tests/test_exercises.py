"""exercises.py as worked examples: blanking keeps a function's signature and docstring and nothing else; for every
exercise each grading test fails on the blanked copy (it grades the blanked functions) and every grading test
passes on the reference. Last, one grading test no module's test file holds (exercise 4's, across ranks)."""

import types
from pathlib import Path

import pytest
import torch

import exercises
import train

ROOT = Path(__file__).resolve().parent.parent


def test_blank_functions_keeps_signature_docstring_and_everything_else():
    """Blanking `side` and `area` leaves their signatures, area's docstring and everything around them byte for
    byte, and puts `raise NotImplementedError(message)` where the bodies were; an unknown function is an error."""
    source = (
        'import math\n\n\n'
        'def area(r):\n'
        '    """Area of a disc of radius r."""\n'
        '    return math.pi * r * r\n\n\n'
        'def side(a,\n'
        '         b=2):  # no docstring\n'
        '    c = a + b\n'
        '    return c\n\n\n'
        'KEEP = 1\n'
    )
    blanked = exercises.blank_functions(source, ["side", "area"], "exercise 9: implement it")
    assert blanked == (
        'import math\n\n\n'
        'def area(r):\n'
        '    """Area of a disc of radius r."""\n'
        "    raise NotImplementedError('exercise 9: implement it')\n\n\n"
        'def side(a,\n'
        '         b=2):  # no docstring\n'
        "    raise NotImplementedError('exercise 9: implement it')\n\n\n"
        'KEEP = 1\n'
    )
    with pytest.raises(ValueError, match="volume"):
        exercises.blank_functions(source, ["volume"], "x")


def test_list_shows_every_exercise_in_order(capsys):
    """`list` prints the exercises in learning order, one concept of the method each, at least 12 of them."""
    assert exercises.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [ex.name for ex in exercises.EXERCISES]
    assert len(lines) >= 12


def test_every_exercise_blanks_functions_that_exist_and_names_documented_tests():
    """Each blanked name is a top-level function of its module, and each grading test exists and has a docstring
    (the student reads it under "it checks:" at the first failure)."""
    for ex in exercises.EXERCISES:
        for name in ex.blank:
            module, function = name.split(".")
            exercises.blank_functions((ROOT / f"{module}.py").read_text(encoding="utf-8"), [function], "x")
        for node_id in ex.tests:
            name = node_id.split("::")[1]
            assert exercises.test_docstring(ROOT, node_id) != name.replace("_", " "), f"{node_id} has no docstring"


def grading_function(node_id):
    """tests/test_x.py::test_name[case] -> tests/test_x.py::test_name."""
    return node_id.split("[")[0]


@pytest.mark.parametrize("number", range(1, len(exercises.EXERCISES) + 1))
def test_every_grading_test_fails_on_the_blank_copy(number, tmp_path, capsys):
    """`start N` blanks the exercise's functions in a copy; `check N` there fails, shows the first failure with what
    it checks and the hint, and every grading test has at least one failing case: none passes without the
    student's code, so each grades the concept and not something around it."""
    ex = exercises.EXERCISES[number - 1]
    folder = tmp_path / ex.name
    exercises.main(["start", str(number), "--dir", str(folder)])
    for module in {name.split(".")[0] for name in ex.blank}:
        assert f"exercise {number}: implement" in (folder / f"{module}.py").read_text()
    assert exercises.main(["check", str(number), "--dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "first failure" in out and "hint:" in out
    failing = {grading_function(line.split()[1]) for line in out.splitlines() if line.startswith("FAIL ")}
    assert failing == set(ex.tests), f"pass on the blank copy: {set(ex.tests) - failing}"


def test_every_grading_test_passes_on_the_reference():
    """All grading tests of all exercises, in one pytest run on the repository itself: each passes (the reference
    is a solution of every exercise)."""
    node_ids = sorted({node_id for ex in exercises.EXERCISES for node_id in ex.tests})
    returncode, results, tail = exercises.run_tests(ROOT, node_ids)
    assert returncode == 0, tail
    assert {outcome for outcome, _, _ in results} == {"PASSED"}
    assert {grading_function(node_id) for _, node_id, _ in results} == set(node_ids)


def test_token_share_counts_the_completion_tokens_of_every_rank(monkeypatch):
    """Loss accounting across ranks. Rank 0 of W = 3 holds two micro-batches of 3 and 4 completion tokens; the
    other ranks hold 5 and 8 (one all_reduce sums the counts): token_share = W / 20. Each micro-batch's token-mean
    loss L_j times n_j * token_share, summed over a rank's micro-batches, then averaged over the ranks (as FSDP
    averages gradients), is sum(l) / 20: the token mean of the whole global batch, every token weighing the same."""
    other_ranks = 5 + 8
    reduced = []

    def all_reduce(tensor, op=torch.distributed.ReduceOp.SUM):
        reduced.append(tensor.item())
        tensor += other_ranks

    monkeypatch.setattr(train.dist, "all_reduce", all_reduce)
    monkeypatch.setattr(train.dist, "get_world_size", lambda: 3)
    packs = [types.SimpleNamespace(mask=torch.tensor([[1, 1, 0], [1, 0, 0]])),
             types.SimpleNamespace(mask=torch.tensor([[1, 1, 1, 1]]))]
    share = train.token_share(packs, torch.device("cpu"))
    assert reduced == [7.0]  # this rank's tokens, once
    assert share == pytest.approx(3 / 20, abs=1e-12)
    token_losses = {0: [[1.0, 2.0, 3.0], [4.0] * 4], 1: [[1.0] * 5], 2: [[2.0] * 8]}  # per rank, per micro-batch
    summed = [sum(sum(l) / len(l) * len(l) * share for l in micro) for micro in token_losses.values()]
    assert sum(summed) / 3 == pytest.approx((6 + 16 + 5 + 16) / 20)
