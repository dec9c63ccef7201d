"""convert.py as worked examples: records of each public format in, rows of our schema (or a problem per line) out."""

import json
import os

import numpy as np
import pytest

import convert
import schema
import toy


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
        dict(dataset="charades", video="v/E.mp4", problem="x", solution=[0.5, 1.02], video_length=33.4),
    ]
    (tmp_path / "in.json").write_text(json.dumps(records))
    n, problems = convert.convert("temporal_r1", str(tmp_path / "in.json"), str(tmp_path / "out.jsonl"))
    row, ends_at_end, ends_past = map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    question = 'When does "person turns a light on" happen in the video?'
    assert n == 3 and row == dict(id="charades-1", video="v/A.mp4", task="tvg", question=question,
                                  segment=[7.5, 15.0], duration=30.0)
    assert ends_at_end["segment"] == [0.2 * 30.456, 30.456]  # fraction x length, not rounded
    assert ends_past["segment"] == [16.7, 1.02 * 33.4]  # an end past the video, kept as published
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


def dummy_video(path, n_frames, fps):
    """A 32x32 grey mp4 of n_frames at fps: a stand-in of a real video's decoded duration n_frames / fps."""
    toy.write_mp4(str(path), np.full((n_frames, 32, 32, 3), 128, np.uint8), fps)


def test_convert_charades_sta_text_lines_then_load(tmp_path, capsys):
    (tmp_path / "videos").mkdir()
    dummy_video(tmp_path / "videos/AB12C.mp4", 20, 5)  # 4 s
    dummy_video(tmp_path / "videos/FPJ9D.mp4", 167, 5)  # 33.4 s, as the real FPJ9D decodes
    lines = ["AB12C 0.5 2.0##the shape moves.", "no separator here",
             "FPJ9D 25.8 34.0##person sit on a chair."]  # a real line: it ends 0.6 s after its video
    (tmp_path / "sta.txt").write_text("\n".join(lines) + "\n")
    convert.main(["--from", "charades_sta", str(tmp_path / "sta.txt"), str(tmp_path / "o.jsonl"),
                  "--video-dir", "videos", "--ext", ".mp4"])
    out = capsys.readouterr()
    assert "wrote 2 rows" in out.out and f"{tmp_path / 'sta.txt'}:2:" in out.err
    read = schema.read_jsonl(str(tmp_path / "o.jsonl"))  # videos found, durations read from them
    assert [(r["id"], r["segment"], r["duration"]) for r in read.rows] == [("AB12C-1", [0.5, 2.0], 4.0),
                                                                           ("FPJ9D-3", [25.8, 34.0], 33.4)]
    assert read.problems == [] and read.outside == ["FPJ9D-3"]  # loaded as published, and counted


# real lines of NExT-GQA's val.csv (qid 6 with its answer written as an index, 1 = photo taken; a qid 11 that has
# no span) and their entries of gsub_val.json
NEXTGQA_CSV = """video_id,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4
2435100235,1906,640,480,how does the man cycling try to sell the watch to the man in the trishaw,show him the watch,7,\
CH,give him catalogue,show him a video,show him the watch,dismount his bicycle,give him the watch strap
2482028659,643,640,480,why is the man holding a piece of paper,speech script,2,CW,speech script,hold painted picture,\
birthday card,draw on it,set up fire
2482028659,643,640,480,why is there a flash of light in the middle of the video,1,6,CW,stage light,photo taken,\
people are recording santa,spot on man,it is raining
2482028659,643,640,480,what next,sit,11,TN,sit,run,jump,cry,sing
"""
NEXTGQA_GSUB = {
    "2435100235": {"duration": 64, "fps": 29.97002997002997, "location": {
        "7": [[20.9, 22.7], [23.8, 26.0], [34.4, 35.8], [50.5, 57.5], [58.5, 63.6]]}},
    "2482028659": {"duration": 21, "fps": 29.97002997002997, "location": {
        "2": [[0.0, 6.1], [9.2, 21.5]], "6": [[8.1, 8.3]]}},
}


def test_convert_nextgqa_keeps_every_span_then_loads_with_the_videos_durations(tmp_path):
    (tmp_path / "val.csv").write_text(NEXTGQA_CSV)
    (tmp_path / "gsub.json").write_text(json.dumps(NEXTGQA_GSUB))
    (tmp_path / "map.json").write_text(json.dumps({"2435100235": "0063/2435100235", "2482028659": "1018/2482028659"}))
    n, problems = convert.convert("nextgqa", str(tmp_path / "val.csv"), str(tmp_path / "o.jsonl"), "nextqa",
                                  grounding=str(tmp_path / "gsub.json"), video_map=str(tmp_path / "map.json"))
    row7, row2, row6 = (json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines())
    assert n == 3 and row7 == dict(
        id="2435100235_7", video="nextqa/0063/2435100235.mp4", task="gqa",
        question="how does the man cycling try to sell the watch to the man in the trishaw?",
        options=["give him catalogue", "show him a video", "show him the watch", "dismount his bicycle",
                 "give him the watch strap"],
        answer="C", segment=[[20.9, 22.7], [23.8, 26.0], [34.4, 35.8], [50.5, 57.5], [58.5, 63.6]])  # all 5 spans
    assert row2["segment"] == [[0.0, 6.1], [9.2, 21.5]] and "duration" not in row2  # gsub's 21 < 21.5: not written
    assert row6["answer"] == "B" and row6["segment"] == [8.1, 8.3]  # answer as an index; one span: [start, end]
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'val.csv'}:5: KeyError")  # qid 11: no span
    for vid, n_frames, fps in (("0063/2435100235", 318, 5), ("1018/2482028659", 429, 20)):  # 63.6 s, 21.45 s
        (tmp_path / "nextqa" / vid).parent.mkdir(parents=True, exist_ok=True)
        dummy_video(tmp_path / "nextqa" / f"{vid}.mp4", n_frames, fps)
    read = schema.read_jsonl(str(tmp_path / "o.jsonl"))
    assert [(r["id"], r["duration"]) for r in read.rows] == [("2435100235_7", 63.6), ("2482028659_2", 21.45),
                                                             ("2482028659_6", 21.45)]
    assert read.problems == [] and read.outside == ["2482028659_2"]  # [9.2, 21.5] ends past the 21.45 s video


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


def test_a_conversion_killed_while_writing_leaves_the_old_output_whole(tmp_path, monkeypatch):
    """The rows go to a temporary file renamed over OUT once complete: a write that dies halfway (a full disk here)
    leaves an earlier OUT byte for byte, and no temporary file. It used to write OUT in place (0 bytes, or cut)."""
    out = tmp_path / "o.jsonl"
    out.write_text('{"id": "earlier"}\n')
    (tmp_path / "in.json").write_text(json.dumps([dict(video="a.mp4", problem="a cat", solution=[0.1, 0.2],
                                                       video_length=10.0)] * 50))
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            self.f.write(text[:len(text) // 2])
            self.f.flush()
            raise OSError(28, "No space left on device")

        writelines = lambda self, lines: self.write("".join(lines))
        __enter__ = lambda self: self
        __exit__ = lambda self, *exc: self.f.close()

    def full_disk(file, mode="r", *args, **kwargs):
        opened = real_open(file, mode, *args, **kwargs)
        return FullDisk(opened) if "w" in mode and str(file).startswith(str(tmp_path)) else opened

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError, match="No space left"):
        convert.convert("temporal_r1", str(tmp_path / "in.json"), str(out))
    monkeypatch.undo()
    assert out.read_text() == '{"id": "earlier"}\n' and sorted(os.listdir(tmp_path)) == ["in.json", "o.jsonl"]
