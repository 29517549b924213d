"""Annotation readers: every malformed file is named with what was expected; samples ask the
questions the stream asks, with answers from the ground truth."""
from __future__ import annotations

import json

import numpy as np
import pytest

from stream.llm.hawkeye import HawkeyeConfig
from stream.llm.prompts import CATEGORY, CHAT, DISCOVERY, EXPLAIN, GROUNDING, parse_answer
from stream.types import SceneGraph
from training.data import (DataError, Segment, conversation_samples, hawk_samples, read_conversations,
                           read_ground_truth, read_hawk, second_label, window_samples)


def write(tmp_path, obj, name="a.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_ground_truth_reads_and_names_the_bad_entry(tmp_path):
    good = {"database": {"v1": {"subset": "test", "annotations": [{"segment": [1.5, 4], "label": "Fall"}]},
                         "v2": {"subset": "train", "annotations": []}}}
    gt = read_ground_truth(write(tmp_path, good))
    assert gt["v1"]["segments"] == [Segment(1.5, 4.0, "fall")] and gt["v2"]["subset"] == "train"
    bad = [({"videos": {}}, "expected"), ("{", "not JSON"),
           ({"database": {"v": {"annotations": [{"segment": [5, 1], "label": "x"}]}}}, r"database\['v'\].annotations\[0\]"),
           ({"database": {"v": {"annotations": [{"segment": [0, "nan"], "label": "x"}]}}}, "segment"),
           ({"database": {"v": {"annotations": [{"segment": [0, 1]}]}}}, "label"),
           ({"database": {"v": []}}, "annotations")]
    for obj, msg in bad:
        with pytest.raises(DataError, match=msg):
            read_ground_truth(write(tmp_path, obj))
    with pytest.raises(DataError, match="missing"):
        read_ground_truth(tmp_path / "none.json")


def test_conversation_and_hawk_records_are_checked(tmp_path):
    conv = [{"path": "v1/2_3.mp4", "label": "fall", "conversations": [
        {"from": "human", "value": "<video>\nWhat happens?"}, {"from": "gpt", "value": "A person falls."}]}]
    assert read_conversations(write(tmp_path, conv)) == conv
    for broken, msg in [([{"conversations": []}], "path"), ([{"path": "x", "conversations": [{"from": "gpt", "value": ""}]}],
                                                             "pairs"),
                        ([{"path": "x", "conversations": [{"from": "gpt", "value": "a"}, {"from": "gpt", "value": "b"}]}],
                         "turn 0 must be")]:
        with pytest.raises(DataError, match=msg):
            read_conversations(write(tmp_path, broken))
    hawk = [{"video": "v1.mp4", "description": "Someone falls.", "QA": [{"q": "Who falls?", "a": "A man."}]}]
    assert read_hawk(write(tmp_path, hawk)) == hawk
    with pytest.raises(DataError, match=r"record 0: \"QA\""):
        read_hawk(write(tmp_path, [{"video": "v", "QA": [{"q": 1}]}]))


def graph(start: float, seconds: int = 4) -> SceneGraph:
    ts = start + np.arange(2 * seconds) / 2
    return SceneGraph("v", int(start // 2), start, start + seconds, ts, ts, (768, 576), ())


def test_window_samples_ask_the_streams_questions_with_answers_from_the_truth():
    segs = [Segment(2.4, 5.0, "fall")]
    assert [second_label(segs, s, s + 1) for s in range(6)] == ["normal", "normal", "fall", "fall", "fall", "normal"]
    (w0, w1) = window_samples("v", [graph(0.0), graph(2.0)], segs, HawkeyeConfig())
    disc = [a for p, a, _ in w0.qa if p == DISCOVERY]
    assert disc == [" No", " No", " Yes", " Yes"] and w0.anomalous
    assert [a for p, a, _ in w0.qa if p == CATEGORY] == [" normal", " normal", " fall", " fall"]   # every second
    assert [span for p, _, span in w0.qa if p == CATEGORY] == [[0], [1], [2], [3]] and w0.category == "fall"
    grounding = next(a for p, a, _ in w1.qa if p == GROUNDING.format(seconds="4"))
    assert parse_answer(grounding).span == (0.0, 3.0)                 # seconds 2..5 of the video, from the window start
    explanation = next(a for p, a, _ in w1.qa if p == EXPLAIN)
    assert parse_answer(explanation).category == "fall"
    (quiet,) = window_samples("v", [graph(10.0)], segs, HawkeyeConfig())
    assert not quiet.anomalous and set(a for p, a, _ in quiet.qa if p == CATEGORY) == {" normal"}
    assert quiet.category == "normal"


def test_conversation_and_hawk_samples_use_the_named_seconds():
    graphs = {"v": [graph(0.0), graph(2.0)]}
    conv = [{"path": "vid_split/v/2_3.mp4", "label": "fall", "conversations": [
        {"from": "human", "value": "<video>\nWhat happens?"}, {"from": "gpt", "value": "A person falls."}]}]
    (s,) = conversation_samples(conv, graphs, HawkeyeConfig())
    assert [c.start for c in s.clips] == [2.0] and s.qa == [(CHAT.format(question="What happens?"), " A person falls.", [0])]
    (h,) = hawk_samples([{"video": "v.mp4", "description": "Someone falls.", "QA": []}], graphs, HawkeyeConfig())
    assert [c.start for c in h.clips] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]      # every second once
    with pytest.raises(DataError, match="names video 'w'"):
        conversation_samples([{**conv[0], "path": "w/0_1.mp4"}], graphs, HawkeyeConfig())
