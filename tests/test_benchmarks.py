"""The paper's evaluation benchmarks (benchmarks.py): real-format records convert (or are listed with their place),
prompts keep each benchmark's layout, and each benchmark's score equals lmms-eval's own scoring code on the same
answers, to 1e-6.

lmms-eval is a test oracle, not a dependency: `pip install --no-deps lmms-eval==0.7.3` puts its task files on the
path, and `lmms_task` loads one task's utils.py by file path, with stand-ins for the heavy imports it does not need
to score (loguru, cv2, datasets, its LLM-judge client). Without the package those tests are skipped, saying so.
"""

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

import benchmarks
import convert
import data
import eval as ev
import metrics
import schema
from test_eval import tiny  # noqa: F401 (the tiny model fixture)

FIXTURES = Path(__file__).parent / "fixtures"
LMMS_EVAL = "lmms-eval==0.7.3"


def lmms_task(monkeypatch, task: str, file: str = "utils.py"):
    """lmms-eval's tasks/<task>/<file> as a module, loaded by path with stand-ins for the imports scoring never
    uses; its own answer extractor (tasks/_task_utils/mcq_extract.py) is the real one."""
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None:
        pytest.skip(f"lmms-eval is not installed (pip install --no-deps {LMMS_EVAL})")
    tasks = Path(spec.submodule_search_locations[0]) / "tasks"
    logger = types.SimpleNamespace(info=print, warning=print, error=print, debug=print)
    stubs = {"loguru": types.SimpleNamespace(logger=logger), "cv2": types.ModuleType("cv2"),
             "datasets": types.SimpleNamespace(Dataset=object), "lmms_eval.tasks": types.ModuleType("t"),
             "lmms_eval.tasks._task_utils": types.ModuleType("u"),
             "lmms_eval.tasks._task_utils.file_utils": types.ModuleType("f"),
             "lmms_eval.verifiers": types.SimpleNamespace(VerificationPipeline=object),
             "lmms_eval.verifiers.extractors": types.SimpleNamespace(StripReasoningExtractor=object),
             "lmms_eval.verifiers.openai": types.SimpleNamespace(OpenAIVerifier=object)}
    if importlib.util.find_spec("requests") is None:
        stubs["requests"] = types.ModuleType("requests")
    stubs["lmms_eval.tasks"]._task_utils = stubs["lmms_eval.tasks._task_utils"]  # for `import a.b.c as x`
    stubs["lmms_eval.tasks._task_utils"].file_utils = stubs["lmms_eval.tasks._task_utils.file_utils"]
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "lmms_eval.tasks._task_utils.mcq_extract",
                        _load("lmms_mcq_extract", tasks / "_task_utils" / "mcq_extract.py"))
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # read at import by some tasks; nothing is opened there
    return _load(f"lmms_{task}_{Path(file).stem}", tasks / task / file)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def converted(fmt, name, subtitles=None):
    return benchmarks.convert(fmt, str(FIXTURES / name), subtitles)


def ours(rows_and_answers):
    """(row, answer text) pairs -> our per-sample benchmark records (the answer inside a vrl completion)."""
    return [benchmarks.score(f"<think>looked.</think><answer>{a}</answer>", row) for row, a in rows_and_answers]


# ------------------------------------------------------------------------------------------------- converters


def test_convert_lists_each_benchmark_and_reads_its_fixture(tmp_path, capsys):
    """`convert.py --help` names every benchmark, and each converter turns its real-format fixture into rows,
    listing the record that does not convert with its place in the file (nothing is dropped silently)."""
    with pytest.raises(SystemExit):
        convert.main(["--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in benchmarks.BENCHMARKS)
    cases = [("mvbench", "action_sequence.json", 1, ["entry 2: ValueError: answer 'Ran away.'"]),
             ("videomme", "videomme_test.jsonl", 2, ["line 3: ValueError: option 0", "line 4: JSONDecodeError"]),
             ("mmvu", "mmvu_validation.json", 3, ["entry 1 id=validation_0: ValueError: question_type 'open-ended'"]),
             ("tempcompass", "tempcompass_multi-choice.json", 4, ["bad_answer/speed/0: ValueError"]),
             ("activitynet", "activitynet_val_1.json", 5, ["v_reversed_span: ValueError: sentence 0"])]
    for fmt, name, n_rows, problems in cases:
        convert.main(["--from", fmt, str(FIXTURES / name), str(tmp_path / f"{fmt}.jsonl"), "--video-dir", "v"])
        out = capsys.readouterr()
        assert f"wrote {n_rows} rows" in out.out, fmt
        listed = out.err.strip().splitlines()
        assert len(listed) == len(problems) and all(f"{FIXTURES / name}:{p}" in line
                                                    for p, line in zip(problems, listed)), (fmt, listed)
        rows = [json.loads(line) for line in (tmp_path / f"{fmt}.jsonl").read_text().splitlines()]
        assert all(r["benchmark"] == fmt and r["video"].startswith("v/") for r in rows)


def test_converted_rows_hold_what_each_protocol_needs():
    """Each benchmark's rows carry the fields its aggregation breaks down by, and the answer as a letter."""
    mv, = converted("mvbench", "action_sequence.json")[0]
    assert mv == dict(id="action_sequence-1", video="star/Charades_segment/ZS9XR.mp4", task="mcq",
                      question="What happened after the person took the food?",
                      options=["Ate the medicine.", "Tidied up the blanket.", "Put down the cup/glass/bottle.",
                               "Took the box."], answer="A", benchmark="mvbench", category="action_sequence")
    vm = converted("videomme_w_subtitle", "videomme_test.jsonl", str(FIXTURES / "videomme_subtitle"))[0][0]
    assert (vm["id"], vm["video"], vm["answer"], vm["duration_bucket"], vm["category"]) == (
        "001-1", "fFjv93ACGo8.mp4", "C", "short", "Counting Problem")
    assert vm["options"][0] == "Apples." and vm["subtitles"] == [[0.0, 2.5, "[Music]"], [2.5, 6.0, "and new at 6:00"]]
    mmvu = converted("mmvu", "mmvu_validation.json")[0]
    assert [(r["id"], r["category"], r["answer"]) for r in mmvu] == [
        ("validation_3", "Science", "B"), ("validation_5", "Science", "B"), ("validation_8", "Science", "A")]
    tc = converted("tempcompass", "tempcompass_multi-choice.json")[0]
    assert [(r["id"], r["answer"], r["category"]) for r in tc] == [
        ("1034419625-action-0", "A", "action"), ("1034419625-action-1", "C", "action"),
        ("1034419625-direction-0", "B", "direction"), ("1034419625_reverse-direction-0", "B", "direction")]
    anet = converted("activitynet", "activitynet_val_1.json")[0]
    assert [(r["id"], r["segment"], r["split"]) for r in anet][:2] == [
        ("v_uqiMw7tQ1Cc-0", [0.28, 55.15], "val_1"), ("v_uqiMw7tQ1Cc-1", [13.79, 54.32], "val_1")]
    assert anet[1]["question"] == ('When does "The coach helps the guy in red with the proper body placement and '
                                   'lifting technique" happen in the video?')


def test_a_file_of_the_wrong_shape_is_one_clear_error(tmp_path):
    """A TempCompass converter given a JSON list (or broken JSON) stops with the file named, before writing."""
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit, match="list.json: a --from tempcompass file holds a JSON object"):
        convert.main(["--from", "tempcompass", str(tmp_path / "list.json"), str(tmp_path / "o.jsonl")])
    with pytest.raises(SystemExit, match="broken.json: not valid JSON"):
        convert.main(["--from", "activitynet", str(tmp_path / "broken.json"), str(tmp_path / "o.jsonl")])
    assert not (tmp_path / "o.jsonl").exists()


# ------------------------------------------------------------------------------------------------- prompts


def test_prompt_keeps_the_benchmark_layout_then_asks_for_vrl_tags():
    """A benchmark row's user text is its benchmark's layout ((A) options for MVBench, Video-MME's subtitles at
    the sampled times) followed by vrl's <think>/<answer> instruction."""
    mv = converted("mvbench", "action_sequence.json")[0][0]
    assert data.user_text(mv) == ("Question:What happened after the person took the food?\nOption:\n"
                                  "(A) Ate the medicine.\n(B) Tidied up the blanket.\n"
                                  "(C) Put down the cup/glass/bottle.\n(D) Took the box.\n" + data.INSTRUCTIONS["mcq"])
    vm = converted("videomme_w_subtitle", "videomme_test.jsonl", str(FIXTURES / "videomme_subtitle"))[0][0]
    at_one_second = data.user_text(vm, timestamps=[1.0])
    assert at_one_second.startswith("This video's subtitles are listed below:\n[Music]\nSelect the best answer")
    assert "and new at 6:00" not in at_one_second and "\nD. The three kinds are of the same number.\n" in at_one_second


# ------------------------------------------------------------------------------------------------- scoring = lmms-eval

MVBENCH_ANSWERS = ["A", "(A) Ate the medicine.", "B. Tidied up the blanket.", "the answer is a", "I think (C).",
                   "Option D", "a-b", "none of these", "Put down the cup/glass/bottle.", "d) Took the box.",
                   "1,5 b", "e", "The best option is (A)", "option.a", "x.b"]


def test_mvbench_equals_lmms_eval(monkeypatch):
    """Per answer and aggregated, MVBench's score is lmms-eval's mvbench_process_results / aggregate_results."""
    lmms = lmms_task(monkeypatch, "mvbench")
    row = converted("mvbench", "action_sequence.json")[0][0]
    doc = {"candidates": row["options"], "answer": row["options"][0]}
    theirs = [lmms.mvbench_process_results(doc, [a])["mvbench_accuracy"] for a in MVBENCH_ANSWERS]
    mine = ours([(row, a) for a in MVBENCH_ANSWERS])
    assert [m["bench_correct"] for m in mine] == [bool(t["score"]) for t in theirs]
    assert 0 < sum(t["score"] for t in theirs) < len(theirs)  # the answers hold right and wrong ones
    accuracy = benchmarks.aggregate(mine)["mvbench"]["overall"]["accuracy"]
    assert abs(100 * accuracy - lmms.mvbench_aggregate_results(theirs)) < 1e-6


def test_mvbench_counts_an_empty_answer_where_lmms_eval_drops_it(monkeypatch):
    """An empty answer scores 0 and stays in our denominator (as the official MVBench evaluation counts it);
    lmms-eval's aggregate alone leaves it out."""
    lmms = lmms_task(monkeypatch, "mvbench")
    row = converted("mvbench", "action_sequence.json")[0][0]
    doc = {"candidates": row["options"], "answer": row["options"][0]}
    answers = ["A", ""]
    theirs = [lmms.mvbench_process_results(doc, [a])["mvbench_accuracy"] for a in answers]
    assert lmms.mvbench_aggregate_results(theirs) == 100.0
    assert benchmarks.aggregate(ours([(row, a) for a in answers]))["mvbench"]["overall"] == {
        "n": 2, "accuracy": 0.5, "n_unread": 1}


VIDEOMME_ANSWERS = ["C", "The best answer is C.", "(B)", "A. Apples.", "I pick D", "c", "Berries.", "B: candles",
                    "It is A or maybe B", "", "Answer: (C) Berries.", "none", "D) same", "I think (C), not D"]


def test_videomme_equals_lmms_eval_overall_and_per_duration(monkeypatch):
    """Video-MME: our letter is lmms-eval's extract_mcq_answer on every answer, and the overall and per-duration
    accuracies equal its videomme_aggregate_results (over all rows, and over each bucket's rows)."""
    lmms = lmms_task(monkeypatch, "videomme")
    base = converted("videomme", "videomme_test.jsonl")[0][0]
    buckets = ("short", "medium", "long")
    rows = [dict(base, id=f"q{i}", duration_bucket=buckets[i % 3]) for i in range(len(VIDEOMME_ANSWERS))]
    docs = [{"question_id": r["id"], "duration": r["duration_bucket"], "domain": "Knowledge",
             "sub_category": "Humanity & History", "task_type": "Counting Problem", "answer": "C",
             "videoID": "fFjv93ACGo8"} for r in rows]
    theirs = [lmms.videomme_process_results(d, [a])["videomme_perception_score"]
              for d, a in zip(docs, VIDEOMME_ANSWERS)]
    mine = ours(list(zip(rows, VIDEOMME_ANSWERS)))
    assert [m["bench_read"] for m in mine] == [t["pred_answer"] for t in theirs]
    section = benchmarks.aggregate(mine)["videomme"]
    assert abs(100 * section["overall"]["accuracy"] - lmms.videomme_aggregate_results(theirs)) < 1e-6
    for bucket, scores in section["by_duration_bucket"].items():
        expected = lmms.videomme_aggregate_results([t for t in theirs if t["duration"] == bucket])
        assert abs(100 * scores["accuracy"] - expected) < 1e-6
    assert set(section["by_duration_bucket"]) == {"short", "medium", "long"}


MMVU_ANSWERS = ["B", "b", "Adiabatic compression", "The answer is A", "A and B", "E. Isothermal expansion",
                "I think Adiabatic", "none", "Because of compression", "C", "(B)"]


def test_mmvu_equals_lmms_eval(monkeypatch):
    """MMVU multiple-choice: right or wrong as lmms-eval's rule-based check says (no LLM judge is asked for a
    multiple-choice question), and the accuracy equals mmvu_aggregate_results."""
    lmms = lmms_task(monkeypatch, "mmvu")
    row = converted("mmvu", "mmvu_validation.json")[0][0]  # validation_3, answer B "Adiabatic compression"
    doc = {"id": row["id"], "question": row["question"], "question_type": "multiple-choice", "answer": "B",
           "choices": dict(zip("ABCDE", row["options"])), "video_path": "videos/Thermodynamics/0.mp4"}
    theirs = [lmms.mmvu_process_results(doc, [a])["accuracy"] for a in MMVU_ANSWERS]
    mine = ours([(row, a) for a in MMVU_ANSWERS])
    assert [m["bench_correct"] for m in mine] == [bool(t["correct"]) for t in theirs]
    assert 0 < sum(t["correct"] for t in theirs) < len(theirs)
    accuracy = benchmarks.aggregate(mine)["mmvu"]["by_category"]["Science"]["accuracy"]
    assert abs(100 * accuracy - lmms.mmvu_aggregate_results_val(theirs)) < 1e-6
    # validation_1's options hold no letter: there "the right option's text is in the answer" decides alone
    numbers = dict(row, options=["10.0", "5.0", "12.0", "15.0", "20.0"], answer="A")
    doc = dict(doc, answer="A", choices=dict(zip("ABCDE", numbers["options"])))
    answers = ["it is 10.0 g", "it is 5.0 g", "10", "A"]
    assert [m["bench_correct"] for m in ours([(numbers, a) for a in answers])] == [
        lmms.mmvu_process_results(doc, [a])["accuracy"]["correct"] == 1 for a in answers] == [True, False, False, True]


TEMPCOMPASS_ANSWERS = ["A. dunking a basketball", "A", "B", "C. passing", "A) dunking", "D.",
                       "B. dribbling a basketball"]


def test_tempcompass_equals_lmms_eval_on_rule_matched_answers(monkeypatch):
    """TempCompass multi-choice: on answers its rules match, our rating and per-dimension/average accuracy equal
    lmms-eval's (an answer they do not match goes to ChatGPT there, to 0 here: next test)."""
    lmms = lmms_task(monkeypatch, "tempcompass")
    rows = converted("tempcompass", "tempcompass_multi-choice.json")[0]
    pairs = [(rows[i % len(rows)], a) for i, a in enumerate(TEMPCOMPASS_ANSWERS)]
    docs = [{"video_id": r["video"][:-4], "question": r["question"], "dim": r["category"],
             "answer": f"{r['answer']}. {r['options'][ord(r['answer']) - 65]}"} for r, _ in pairs]
    theirs = [lmms.tempcompass_process_results_multi_choice(d, [a]) for d, (_, a) in zip(docs, pairs)]
    mine = ours(pairs)
    assert [m["bench_correct"] for m in mine] == [bool(t["avg_accuracy"]["rating"]) for t in theirs]
    section = benchmarks.aggregate(mine)["tempcompass"]
    assert abs(100 * section["overall"]["accuracy"]
               - lmms.tempcompass_aggregate_rating([t["avg_accuracy"] for t in theirs], None)) < 1e-6
    for dim, scores in section["by_category"].items():
        per_dim = [t[f"{dim}_accuracy"] for t in theirs if f"{dim}_accuracy" in t]
        assert abs(100 * scores["accuracy"] - lmms.tempcompass_aggregate_rating(per_dim, None)) < 1e-6


def test_tempcompass_unmatched_answer_scores_zero_and_is_counted():
    """An answer TempCompass' rules cannot read (lmms-eval would ask ChatGPT) scores 0, is counted as unread, and
    stays in the denominator."""
    row = converted("tempcompass", "tempcompass_multi-choice.json")[0][0]
    mine = ours([(row, "A. dunking a basketball"), (row, "He dunks it.")])
    assert benchmarks.aggregate(mine)["tempcompass"]["overall"] == {"n": 2, "accuracy": 0.5, "n_unread": 1}


ANET_ANSWERS = ["0.0 to 50.0", "13.0 - 54.0", "20.5 to 30.0", "no idea", "0 - 55.15", "40 to 45"]


def test_activitynet_equals_lmms_eval_temporal_grounding(monkeypatch):
    """ActivityNet grounding: R@0.3/0.5/0.7 and mIoU equal lmms-eval's temporal-grounding metrics (its
    Charades-STA task; lmms-eval has no ActivityNet grounding task, and the metric is the same), an unparseable
    answer counted as IoU 0 in both."""
    lmms = lmms_task(monkeypatch, "charades_sta")
    rows = converted("activitynet", "activitynet_val_1.json")[0]
    pairs = [(rows[i % len(rows)], a) for i, a in enumerate(ANET_ANSWERS)]
    theirs = lmms._temporal_grounding_compute_metrics(
        [{f"{i}-{r['id']}>>>{r['question']}>>>{r['segment']}": a} for i, (r, a) in enumerate(pairs)])  # keys unique
    overall = benchmarks.aggregate(ours(pairs))["activitynet"]["overall"]
    for mine, lmms_name in (("R@0.3", "IOU@3"), ("R@0.5", "IOU@5"), ("R@0.7", "IOU@7"), ("mIoU", "mIOU")):
        assert abs(100 * overall[mine] - theirs[lmms_name]) < 1e-6, mine
    assert overall["n"] == 6 and overall["n_unread"] == 1 and 0 < overall["mIoU"] < 1


# ------------------------------------------------------------------------------------------------- eval + table


def test_eval_reports_each_benchmark_and_the_paper_table(tmp_path, capsys):
    """metrics.summarize adds each benchmark's official aggregate (overall, then per duration bucket) to the metrics;
    `python eval.py --table METRICS...` prints one line per benchmark with the paper's 7B number beside ours and
    the frame/pixel settings the run used."""
    vm = converted("videomme", "videomme_test.jsonl")[0]
    anet = converted("activitynet", "activitynet_val_1.json")[0][:2]
    charades = dict(anet[0], id="c1", benchmark="charades_sta")
    records = [metrics.score_completion(f"<think>.</think><answer>{a}</answer>", r)
               for r, a in [(vm[0], "C"), (vm[1], "B"), (anet[0], "0.28 to 55.15"), (anet[1], "oops"),
                            (charades, "0.28 to 27.7")]]
    scores = metrics.summarize(records, [])
    assert scores["benchmarks"]["videomme"]["overall"] == {"n": 2, "accuracy": 0.5, "n_unread": 0}
    assert scores["benchmarks"]["videomme"]["by_duration_bucket"] == {
        "short": {"n": 2, "accuracy": 0.5, "n_unread": 0}}
    assert scores["benchmarks"]["activitynet"]["overall"]["mIoU"] == 0.5
    settings = {"fps": 2.0, "max_frames": 768, "video_tokens": 2048}
    print(benchmarks.report(scores["benchmarks"], settings))
    printed = capsys.readouterr().out
    assert "VideoMME (w/o sub): accuracy 50.0  (n=2)  [fps=2.0 max_frames=768 video_tokens=2048]" in printed
    (tmp_path / "m.json").write_text(json.dumps({**scores, "settings": settings}))
    ev.main(["--table", str(tmp_path / "m.json")])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["benchmark", "metric", "ours", "paper"]
    charades_miou = [line for line in table if line.startswith("Charades-STA") and " mIoU " in line]
    assert charades_miou and charades_miou[0].split()[2:4] == ["50.0", "57.0"]  # IoU(0.28-27.7, 0.28-55.15) = 0.5


def test_table_refuses_metrics_without_a_benchmark_section(tmp_path):
    """A metrics file from rows that carry no benchmark is an error naming it, not an empty table."""
    (tmp_path / "plain.json").write_text(json.dumps({"mcq": {"accuracy": 0.5}}))
    with pytest.raises(SystemExit):
        ev.main(["--table", str(tmp_path / "plain.json")])


def test_subtitles_are_prompt_text_and_checked_like_it(tmp_path):
    """Video-MME with subtitles needs --subtitles; a subtitle line holding a chat control token is refused at load
    like such a question would be (it would end the user turn)."""
    with pytest.raises(SystemExit):
        convert.main(["--from", "videomme_w_subtitle", str(FIXTURES / "videomme_test.jsonl"),
                      str(tmp_path / "o.jsonl")])
    row = converted("videomme_w_subtitle", "videomme_test.jsonl", str(FIXTURES / "videomme_subtitle"))[0][0]
    assert schema.check_text(row, schema.MAX_TEXT_CHARS) == []
    row["subtitles"].append([6.0, 8.0, "bye<|im_end|>"])
    assert schema.check_text(row, schema.MAX_TEXT_CHARS) == [
        ("subtitles", "holds the special token '<|im_end|>', which could add chat turns")]


def test_eval_cli_on_benchmark_rows_prints_their_aggregates_and_settings(tiny, toy_dir, tmp_path, capsys):
    """eval.py on converted benchmark rows (toy videos stand in for the real ones): the prompts are built from the
    benchmark layouts, the metrics JSON holds each benchmark's aggregate and the printed report names the frame
    settings; benchmarks.py then tabulates that JSON."""
    toy_rows = [json.loads(line) for line in (toy_dir / "train.jsonl").read_text().splitlines()]
    video, length = str(toy_dir / toy_rows[0]["video"]), toy_rows[0]["duration"]
    mv = dict(converted("mvbench", "action_sequence.json")[0][0], video=video)
    anet = dict(converted("activitynet", "activitynet_val_1.json")[0][0], video=video, segment=[0.5, 2.0],
                duration=length)
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (mv, anet)))
    ev.main(["--model", str(tiny), "--data", str(tmp_path / "bench.jsonl"), "--out", str(tmp_path / "m.json"),
             "--max-new-tokens", "8", "--max-frames", "4"])
    printed = capsys.readouterr().out
    assert "MVBench: accuracy " in printed and "max_frames=4" in printed and "ActivityNet: R@0.3 " in printed
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["benchmarks"]["mvbench"]["by_category"]["action_sequence"]["n"] == 1
    assert m["benchmarks"]["activitynet"]["overall"]["n"] == 1
    ev.main(["--table", str(tmp_path / "m.json")])
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["MVBench"] + ["ActivityNet"] * 4


def test_table_merges_a_benchmark_split_over_several_files(tmp_path, capsys):
    """MVBench evaluated as two task files (3 of 4 right, then 0 of 1): one line, 3/5 = 60.0 over 5 questions."""
    for k, (acc, n) in enumerate([(0.75, 4), (0.0, 1)]):
        section = {"mvbench": {"overall": {"n": n, "accuracy": acc, "n_unread": 0}}}
        (tmp_path / f"m{k}.json").write_text(json.dumps({"benchmarks": section, "settings": {"fps": 2.0}}))
    ev.main(["--table", str(tmp_path / "m0.json"), str(tmp_path / "m1.json")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split() == ["MVBench", "accuracy", "60.0", "-", "5", "fps=2.0"]
