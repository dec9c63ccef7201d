"""convert.py as worked examples: records of each public format in, rows of our schema (or a problem per line) out."""

import json

import pytest

import convert
import data


def write_lines(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_convert_temporal_r1_fractions_to_seconds(tmp_path):
    records = [
        dict(dataset="charades", video="v/A.mp4", problem="person turns a light on.", solution=[0.25, 0.5],
             video_length=30.0),
        dict(dataset="charades", video="v/B.mp4", problem="x", solution=[12.0, 15.0], video_length=30),  # seconds
        dict(video="v/C.mp4"),
        dict(dataset="charades", video="v/D.mp4", problem="x", solution=[0.2, 1.0], video_length=30.456),
    ]
    (tmp_path / "in.json").write_text(json.dumps(records))
    n, problems = convert.convert("temporal_r1", str(tmp_path / "in.json"), str(tmp_path / "out.jsonl"))
    row, ends_at_end = map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    question = 'When does "person turns a light on" happen in the video?'
    assert n == 2 and row == dict(id="charades-1", video="v/A.mp4", task="tvg", question=question,
                                  segment=[7.5, 15.0], duration=30.0)
    assert ends_at_end["segment"] == [6.09, 30.456]  # rounded to 0.01 s, never past the end (30.46 would be)
    assert [p.split(": ")[0] for p in problems] == [f"{tmp_path / 'in.json'}:2", f"{tmp_path / 'in.json'}:3"]


def test_convert_lmms_eval_charades_rows(tmp_path):
    lines = [dict(video="3MSZA.mp4", caption="person turn a light on.", timestamp=[24.3, 30.4]), dict(video="b")]
    write_lines(tmp_path / "in.jsonl", lines + ['{"video": "c.mp4", '])
    n, problems = convert.convert("lmms_charades", str(tmp_path / "in.jsonl"), str(tmp_path / "o.jsonl"), "videos")
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert n == 1 and row["video"] == "videos/3MSZA.mp4" and row["segment"] == [24.3, 30.4]
    assert row["question"] == 'When does "person turn a light on" happen in the video?'
    assert [p.split(": ")[:2] for p in problems] == [
        [f"{tmp_path / 'in.jsonl'}:2", "KeyError"],
        [f"{tmp_path / 'in.jsonl'}:3", "JSONDecodeError"],
    ]


def test_convert_charades_sta_text_lines_then_load(toy_dir, tmp_path, capsys):
    (tmp_path / "sta.txt").write_text("toy_00000 0.5 2.0##the shape moves.\nno separator here\ntoy_00001 1 3##x\n")
    convert.main(["--from", "charades_sta", str(tmp_path / "sta.txt"), str(tmp_path / "o.jsonl"),
               "--video-dir", str(toy_dir / "videos"), "--ext", ".mp4"])
    out = capsys.readouterr()
    assert "wrote 2 rows" in out.out and f"{tmp_path / 'sta.txt'}:2:" in out.err
    rows = data.load_jsonl(str(tmp_path / "o.jsonl"))  # videos found, durations read from them
    assert [(r["id"], r["segment"]) for r in rows] == [("toy_00000-1", [0.5, 2.0]), ("toy_00001-3", [1.0, 3.0])]


def test_convert_nextgqa_csv_plus_grounding_json(tmp_path):
    header = "video_id,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
    (tmp_path / "val.csv").write_text(
        header + "4010069381,1800,640,480,why did the boy pick up one present,to give to the girl,6,CW,"
        "to eat,to give to the girl,to throw,to play,to clean\n"
        "4010069381,1800,640,480,what did the girl do,2,9,TN,sit,run,jump,cry,sing\n"  # answer as an index
        "4010069381,1800,640,480,what next,sit,11,TN,sit,run,jump,cry,sing\n"
    )
    spans = {"6": [[12.1, 17.1], [20.0, 23.5]], "9": [[1.0, 2.0]]}  # qid -> segments
    (tmp_path / "gsub.json").write_text(json.dumps({"4010069381": {"duration": 60.0, "fps": 30, "location": spans}}))
    (tmp_path / "map.json").write_text(json.dumps({"4010069381": "1106/4010069381"}))
    n, problems = convert.convert("nextgqa", str(tmp_path / "val.csv"), str(tmp_path / "o.jsonl"), "nextqa",
                               grounding=str(tmp_path / "gsub.json"), video_map=str(tmp_path / "map.json"))
    row, row2 = (json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert n == 2 and row2["answer"] == "C" and row2["segment"] == [1.0, 2.0]
    assert row == dict(id="4010069381_6", video="nextqa/1106/4010069381.mp4", task="gqa",
                                  question="why did the boy pick up one present?",
                                  options=["to eat", "to give to the girl", "to throw", "to play", "to clean"],
                                  answer="B", segment=[12.1, 23.5], duration=60.0)  # several spans -> hull
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'val.csv'}:4: KeyError")  # qid 11: no span


def test_convert_video_r1_multiple_choice(tmp_path):
    records = [
        dict(problem_id=2, problem="What is the man doing?", data_type="video", problem_type="multiple choice",
             options=["A. cooking", "B. running", "C. sleeping", "D. reading"], solution="<answer>B</answer>",
             path="./LLaVA-Video/x.mp4"),
        dict(problem_id=3, problem="?", data_type="image", problem_type="multiple choice", options=[], path="y.jpg",
             solution="<answer>A</answer>"),
    ]
    (tmp_path / "in.json").write_text(json.dumps(records))
    n, problems = convert.convert("video_r1", str(tmp_path / "in.json"), str(tmp_path / "o.jsonl"))
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert n == 1 and row == dict(id="video_r1-2", video="./LLaVA-Video/x.mp4", task="mcq",
                                  question="What is the man doing?",
                                  options=["cooking", "running", "sleeping", "reading"], answer="B")
    assert len(problems) == 1 and "not a video multiple-choice item" in problems[0] and ":2:" in problems[0]


def test_a_json_list_with_a_utf8_byte_order_mark_converts(tmp_path, capsys):
    """Windows tools often start a UTF-8 file with a byte-order mark; read as plain UTF-8 it hid the list's `[`
    and every line became a misleading per-line error, 0 rows, exit 0."""
    records = [dict(dataset="charades", video=f"v/{k}.mp4", problem="a person sits.", solution=[0.1, 0.5],
                    video_length=20.0) for k in range(30)]
    (tmp_path / "in.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(records, indent=1).encode())
    convert.main(["--from", "temporal_r1", str(tmp_path / "in.json"), str(tmp_path / "o.jsonl")])
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 30
    assert "wrote 30 rows" in capsys.readouterr().out


def test_nothing_converted_is_an_error(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps([dict(video="a.mp4"), dict(video="b.mp4")]))
    with pytest.raises(SystemExit, match="no record of .*in.json converted: is it a --from temporal_r1 file?"):
        convert.main(["--from", "temporal_r1", str(tmp_path / "in.json"), str(tmp_path / "o.jsonl")])
