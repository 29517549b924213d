"""Operators' questions: answers from the ground truth and the scene graphs, what training teaches
of them, how answers are scored (exact match, BLEU), and the chat evaluation on the tiny benchmark."""
from __future__ import annotations

import json
import random

import numpy as np

from stream.types import PersonTrack, SceneGraph
from training.data import Segment, people_count, taught, window_questions
from training.qa import Question, bleu, correct, main, score, wilson


def graph(start: float, present: list[list[bool]], objects: dict[int, list[float]] | None = None) -> SceneGraph:
    T = len(present[0]) if present else 8
    ts = start + np.arange(T) / 2
    tracks = tuple(PersonTrack(i + 1, np.array(p), np.zeros((T, 4), np.float32), np.ones(T, np.float32),
                               np.zeros((T, 17, 3), np.float32)) for i, p in enumerate(present))
    objs = tuple(np.array([objects[t] + [3.0, 1.0]], np.float32) if objects and t in objects else np.zeros((0, 6), np.float32)
                 for t in range(T))
    return SceneGraph("v", 0, start, start + T / 2, ts, ts, (768, 576), tracks, objects=objs)


def test_questions_are_answered_from_the_truth_in_stream_seconds():
    g = graph(100.0, [[True] * 8, [True] * 8, [False] * 6 + [True] * 2], objects={7: [600, 400, 640, 440]})
    assert people_count(g) == 2                                  # the median frame holds two people
    qs = {q.question: q for q in window_questions(g, [Segment(101.2, 103.0, "abandoned"), Segment(90, 100.3, "fall")])}
    assert qs["How many people are there?"].answer == " 2."
    assert qs["Was a bag left behind?"].answer == " Yes, on the right of the view."
    assert qs["Is anyone lying on the ground?"].answer == " No."           # 0.3 s of a fall is not in the window
    assert qs["Is anyone running?"].answer == " No."
    describe = qs["What happened between 100 and 104 seconds?"]
    assert describe.kind == "describe" and describe.answer == " A bag is left behind on the ground from 101 to 103 seconds."


def test_training_asks_a_yes_and_a_no_of_each_window():
    g = graph(0.0, [[True] * 8])
    qs = window_questions(g, [Segment(0.0, 4.0, "running")])
    picked = taught(qs, random.Random(0))
    answers = [q.answer for q in picked if q.kind == "yes/no"]
    assert len(answers) == 2 and answers[0].startswith(" Yes") and answers[1] == " No."
    quiet = taught(window_questions(g, []), random.Random(0))
    assert [q.answer for q in quiet if q.kind == "yes/no"] == [" No."]


def test_answers_are_scored_by_exact_match_and_bleu():
    assert correct(Question("How many?", " 3.", "count"), "3 people") and not correct(Question("n", " 3.", "count"), "13")
    assert correct(Question("Is there a fight?", " Yes.", "yes/no"), "Yes, two people.")
    assert not correct(Question("Is there a fight?", " No.", "yes/no"), "Yes.")
    same = bleu(["a person falls from 1 to 3 seconds"], ["a person falls from 1 to 3 seconds"])
    assert all(abs(v - 1.0) < 1e-9 for v in same.values())
    worse = bleu(["a person falls from 1 to 3 seconds"], ["people walk normally"])
    assert worse["bleu1"] < 0.2 and worse["bleu4"] < worse["bleu1"] + 1e-9
    lo, hi = wilson(8, 10)
    assert lo < 0.8 < hi and 0.0 <= lo and hi <= 1.0
    rows = [{"kind": "yes/no", "question": "Is there a fight?", "truth": t, "answer": a}
            for t, a in (("Yes.", "Yes."), ("No.", "No."), ("No.", "Yes."), ("No.", "No."))]
    report = score(rows + [{"kind": "count", "question": "How many?", "truth": "2.", "answer": "2."}])
    assert report["yes/no"]["exact"] == 0.75 and report["yes/no"]["always_no"] == 0.75 and report["count"]["exact"] == 1.0
    assert report["per_question"]["Is there a fight?"]["yes_found"] == 1.0
    assert report["yes/no"]["balanced"] == (1.0 + 2 / 3) / 2


def test_the_chat_evaluation_asks_a_model_and_writes_hawks_format(tiny_bench, tmp_path):
    from stream.llm.lm import new_model
    new_model().save(tmp_path / "model")                  # untrained: the answers are arbitrary, the report is whole
    out = tmp_path / "qa"
    assert main(["--model", str(tmp_path / "model"), "--features", str(tiny_bench), "--gt", str(tiny_bench / "gt.json"),
                 "--subset", "test", "--windows", "2", "--out", str(out)]) == 0
    records = json.loads((out / "qa_test.json").read_text())
    assert records and all(r["video"].startswith("test_000/") and r["QA"] and r["description"] for r in records)
    report = json.loads((out / "report.json").read_text())
    assert report["count"]["n"] == 2 and report["yes/no"]["n"] == 16 and report["describe"]["n"] == 2
    assert len(json.loads((out / "answers.json").read_text())) == 2 * 10
    assert main(["--features", str(tmp_path / "none"), "--gt", str(tiny_bench / "gt.json")]) == 2
