"""exercises.py as worked examples: blanking keeps a function's signature and docstring and nothing else; for every
exercise the grading can fail (the blanked copy fails its check) and passes once the reference bodies are back."""

import shutil
from pathlib import Path

import pytest

import exercises

ROOT = Path(__file__).resolve().parent.parent


def test_blank_functions_keeps_signature_docstring_and_everything_else():
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
    assert exercises.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == [ex.name for ex in exercises.EXERCISES]
    assert len(lines) >= 8


@pytest.mark.parametrize("number", range(1, len(exercises.EXERCISES) + 1))
def test_check_fails_on_the_blank_copy_and_passes_on_the_reference(number, tmp_path, capsys):
    ex = exercises.EXERCISES[number - 1]
    folder = tmp_path / ex.name
    exercises.main(["start", str(number), "--dir", str(folder)])
    modules = {name.split(".")[0] for name in ex.blank}
    for module in modules:
        assert f"exercise {number}: implement" in (folder / f"{module}.py").read_text()
    assert exercises.main(["check", str(number), "--dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "first failure" in out and "hint:" in out

    for module in modules:  # the reference bodies back: every grading test passes
        shutil.copy(ROOT / f"{module}.py", folder / f"{module}.py")
    assert exercises.main(["check", str(number), "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("pass ") >= len(ex.tests)
