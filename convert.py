"""Converters from the public dataset formats to our JSONL schema (README), one function per format.

    python convert.py --from temporal_r1   train.json            out.jsonl --video-dir videos
    python convert.py --from lmms_charades charades.jsonl        out.jsonl --video-dir Charades_v1_480
    python convert.py --from charades_sta  charades_sta_test.txt out.jsonl --video-dir Charades_v1_480 --ext .mp4
    python convert.py --from nextgqa val.csv out.jsonl --grounding gsub_val.json --video-map map_vid_vidorID.json
    python convert.py --from video_r1 Video-R1-260k.json         out.jsonl --video-dir Video-R1-data
    python convert.py --from mvbench json/action_sequence.json   out.jsonl --video-dir MVBench/video   (benchmarks.py)

A record that does not convert is listed with its line on stderr; nothing is dropped silently. Times are kept as
the annotation publishes them: not clipped to the video, not rounded (public annotations end past the decoded video
by rounding; schema.read_jsonl accepts and counts such rows, and the official evaluations score them as they are).
"""

import argparse
import csv
import json
import os
import re
import sys
from pathlib import Path

import benchmarks
import flags
from data import GROUNDING_QUESTION
from schema import letters, refuse_overwriting_inputs
from video import DataError

def grounding_question(caption: str) -> str:
    return GROUNDING_QUESTION.format(caption.strip().rstrip("."))


def from_temporal_r1(rec: dict, k: int) -> dict:
    """Temporal-R1 training JSON: `solution` = [start, end] as FRACTIONS of `video_length` (seconds).

    Seconds = fraction * video_length, not rounded: IoU does not change with the unit, so our reward in seconds
    equals the release's in fractions (to float rounding, ~1e-15). An end fraction above 1 is kept as published.
    """
    (a, b), length = rec["solution"], float(rec["video_length"])
    if not 0 <= a < min(b, 1):
        raise ValueError(f"solution {rec['solution']} is not an increasing pair of fractions starting in [0, 1)")
    return dict(
        id=f"{rec.get('dataset', 'temporal_r1')}-{k}", video=rec["video"], task="tvg",
        question=grounding_question(rec["problem"]), segment=[a * length, b * length], duration=length,
    )


def from_lmms_charades(rec: dict, k: int) -> dict:
    """lmms-eval Charades-STA rows: `video`, `caption`, `timestamp` = [start, end] in seconds."""
    a, b = (float(x) for x in rec["timestamp"])
    question = grounding_question(rec["caption"])
    return dict(id=f"charades-{k}", video=rec["video"], task="tvg", question=question, segment=[a, b],
                benchmark="charades_sta")


def from_charades_sta(line: str, k: int, ext: str = ".mp4") -> dict:
    """Charades-STA's own text lines: `3MSZA 24.3 30.4##person turn a light on.`"""
    head, sentence = line.split("##", 1)
    vid, a, b = head.split()
    question = grounding_question(sentence)
    return dict(id=f"{vid}-{k}", video=vid + ext, task="tvg", question=question, segment=[float(a), float(b)],
                benchmark="charades_sta")


def from_nextgqa(rec: dict, k: int, spans: dict, video_map: dict | None = None, ext: str = ".mp4") -> dict:
    """NExT-GQA: QA csv row (video_id, qid, question, answer as text or index, a0..a4) + grounding json
    {video_id: {duration, location: {qid: [[s, e], ...]}}}.

    Every span is kept, as published: `segment` is [s, e] for one span, [[s, e], ...] for several (the official
    evaluation scores the best of them). No `duration` is written: the grounding file's is rounded to whole
    seconds (64 for a 63.6 s video) and spans run past it, so schema.read_jsonl reads the video's own.
    """
    options = [rec[f"a{i}"].strip() for i in range(5)]
    answer = rec["answer"].strip()
    answer = int(answer) if answer.isdigit() else options.index(answer)
    info = spans[rec["video_id"]]
    segs = info["location"][str(rec["qid"])]
    return dict(
        id=f"{rec['video_id']}_{rec['qid']}", video=(video_map or {}).get(rec["video_id"], rec["video_id"]) + ext,
        task="gqa", question=rec["question"].strip() + "?", options=options, answer=letters(5)[answer],
        segment=segs if len(segs) > 1 else segs[0],
    )


def from_video_r1(rec: dict, k: int) -> dict:
    """Video-R1 style JSON: multiple-choice video items, options "A. …", solution "<answer>B</answer>"."""
    if rec.get("data_type") != "video" or rec.get("problem_type") != "multiple choice":
        raise ValueError(f"not a video multiple-choice item ({rec.get('data_type')}, {rec.get('problem_type')})")
    options = [re.sub(r"^\s*[A-Z][.:)]\s*", "", o) for o in rec["options"]]
    answer = re.search(r"<answer>\s*([A-Z])\s*</answer>", rec["solution"]).group(1)
    return dict(
        id=f"video_r1-{rec.get('problem_id', k)}", video=rec["path"], task="mcq", question=rec["problem"],
        options=options, answer=answer,
    )


def _records(path: str):
    """(line number, record) of a csv (dict rows), a JSON list (entry number, from 1) or a text/JSONL file (the
    line's text, parsed by the converter so that a malformed line is reported like any other bad record). A UTF-8
    byte-order mark (Windows tools write one) is skipped: left in, it hides the `[` of a JSON list."""
    with open(path, encoding="utf-8-sig") as f:
        if path.endswith(".csv"):
            yield from enumerate(csv.DictReader(f), 2)
            return
        text = f.read()
    if text.lstrip().startswith("["):
        yield from enumerate(json.loads(text), 1)
    else:
        yield from ((i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip())


def convert(
    fmt: str, inp: str, out: str, video_dir: str | None = None, ext: str = ".mp4", grounding: str | None = None,
    video_map: str | None = None, subtitles: str | None = None,
) -> tuple[int, list[str]]:
    """Convert a public file to our JSONL -> (rows written, problems as 'IN:line: message').

    Video paths get video_dir prepended when given (our schema reads them relative to OUT's folder)."""
    if fmt in benchmarks.CONVERTIBLE:  # the paper's evaluation benchmarks: benchmarks.py
        rows, problems = benchmarks.convert(fmt, inp, subtitles)
        return _write(rows, out, video_dir), problems
    if fmt == "nextgqa":
        spans = json.loads(Path(grounding).read_text(encoding="utf-8"))
        vmap = json.loads(Path(video_map).read_text(encoding="utf-8")) if video_map else None
    one = {
        "temporal_r1": from_temporal_r1,
        "lmms_charades": from_lmms_charades,
        "charades_sta": lambda rec, k: from_charades_sta(rec, k, ext),
        "nextgqa": lambda rec, k: from_nextgqa(rec, k, spans, vmap, ext),
        "video_r1": from_video_r1,
    }[fmt]
    rows, problems = [], []
    for line, rec in _records(inp):
        try:
            row = one(json.loads(rec) if isinstance(rec, str) and fmt != "charades_sta" else rec, line)
        except Exception as e:  # any shape of bad record: reported with its line, never dropped silently
            problems.append(f"{inp}:{line}: {type(e).__name__}: {e}")
            continue
        rows.append(row)
    return _write(rows, out, video_dir), problems


def _write(rows: list[dict], out: str, video_dir: str | None) -> int:
    """The converted rows (videos under video_dir) to out, atomically; nothing converted: an existing out stays."""
    for row in rows:
        row["video"] = os.path.join(video_dir, row["video"]) if video_dir else row["video"]
    if rows:
        write_atomic(out, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def write_atomic(path: str, text: str) -> None:
    """Write text to a temporary file beside path, then rename it over path: a kill or a full disk mid-write
    leaves the old file whole, never a truncated one."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


FORMATS = ("temporal_r1", "lmms_charades", "charades_sta", "nextgqa", "video_r1") + benchmarks.CONVERTIBLE


def main(argv=None):
    benchmark_help = "; ".join(f"{name}: {b.about}" for name, b in benchmarks.BENCHMARKS.items())
    parser = argparse.ArgumentParser(description="convert a public dataset file to our JSONL schema",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--from", dest="fmt", **flags.REQUIRED, choices=FORMATS,
                        help=f"the format of INP; the paper's evaluation benchmarks are {benchmark_help}")
    parser.add_argument("inp", help="the public file")
    parser.add_argument("out", help="the JSONL written")
    parser.add_argument("--video-dir", "--video_dir", help="prepended to every video path; None = the paths as given")
    parser.add_argument("--ext", default=".mp4", help="video file extension (charades_sta, nextgqa)")
    parser.add_argument("--grounding", help="nextgqa: the grounding json (gsub_*.json)")
    parser.add_argument("--video-map", "--video_map", help="nextgqa: map_vid_vidorID.json")
    parser.add_argument("--subtitles", help="videomme_w_subtitle: the folder of <videoID>.srt files")
    args = parser.parse_args(argv)
    if args.fmt == "nextgqa" and not args.grounding:
        parser.error("--from nextgqa needs --grounding gsub_*.json")
    if args.fmt == "videomme_w_subtitle" and not (args.subtitles and os.path.isdir(args.subtitles)):
        parser.error(f"--from videomme_w_subtitle needs --subtitles DIR of <videoID>.srt, got {args.subtitles!r}")
    inputs = {"the input": args.inp, "--grounding": args.grounding, "--video-map": args.video_map,
              "--subtitles": args.subtitles}
    try:
        refuse_overwriting_inputs([args.out], inputs)
        n, problems = convert(args.fmt, args.inp, args.out, args.video_dir, args.ext, args.grounding, args.video_map,
                              args.subtitles)
    except (DataError, ValueError, OSError) as e:  # a whole file of the wrong shape (a bad record is listed)
        sys.exit(f"convert.py: {e}")
    for p in problems:
        print(p, file=sys.stderr)
    if n == 0:
        kept = f"; {args.out} left as it was" if os.path.exists(args.out) else ""
        sys.exit(f"no record of {args.inp} converted: is it a --from {args.fmt} file?{kept}")
    print(f"wrote {n} rows to {args.out}; {len(problems)} record(s) not converted (listed above)")


if __name__ == "__main__":
    main()
