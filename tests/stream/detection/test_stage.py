"""The detector stage without sockets or threads: verdicts in window order per camera whatever
order the models finish in, repeats dropped, a camera's end after its last event, a close held
until its evidence (and the camera's later messages behind it), explanations as updates."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from types import SimpleNamespace

import numpy as np

from stream.config import EventsConfig
from stream.detection.stage import AlertSequencer, DetectorStage
from stream.types import Alert, EndOfStream, Evidence, SceneGraph, SecondScore, Verdict

EVENTS = EventsConfig(min_duration_s=1.0, close_after_s=1.0, cooldown_s=0.0)


def scene(camera: str, window_id: int) -> SceneGraph:
    ts = np.array([float(window_id), window_id + 0.5])
    return SceneGraph(camera, window_id, float(window_id), window_id + 1.0, ts, ts, (64, 48), ())


def verdict(s: SceneGraph, score: float) -> Verdict:
    return Verdict(s.camera, s.window_id, s.start, s.end, s.start, s.end, score,
                   (SecondScore(s.start, s.end, score, "fall" if score >= 0.5 else "normal"),),
                   {"fall": score}, "", "scripted", 1)


class ScriptedModels:
    """Scores each window as `scores` says (camera -> [score by window id]); `parallel` batches at
    once, finished only when the test says (`finish`), in any order."""
    max_wait_s, explains, restarts = 0.0, False, 0

    def __init__(self, scores: dict[str, list[float]], parallel: int = 1, max_batch: int = 1, auto: bool = True):
        self.scores, self.parallel, self.max_batch, self.auto = scores, parallel, max_batch, auto
        self.futures: list[tuple[list[SceneGraph], Future]] = []

    def submit(self, scenes: list[SceneGraph]) -> Future:
        f: Future = Future()
        self.futures.append((scenes, f))
        if self.auto:
            self.finish(len(self.futures) - 1)
        return f

    def finish(self, k: int) -> None:
        scenes, f = self.futures[k]
        f.set_result([verdict(s, self.scores[s.camera][s.window_id]) for s in scenes])

    def explain(self, scene, category, start, end) -> str:
        return f"a {category} from {start:.0f} to {end:.0f}"


class NoNormal:
    def of(self, camera):
        return SimpleNamespace(admits=lambda verdict: None, observed=lambda *a: None, event=lambda *a: None)


class Evidence_:
    """An evidence writer whose results the test hands back when it wants."""
    def __init__(self):
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.submitted: list[str] = []

    def submit(self, scene, verdict, alert) -> bool:
        self.submitted.append(alert.alert_id)
        return True


def stage(models, evidence=None):
    out: list = []
    st = DetectorStage(models, lambda camera: EVENTS, out.append, scored=lambda s, v: v, zones={}, normal=NoNormal(),
                       evidence=evidence)
    return st, out


def kinds(out) -> list[str]:
    def kind(x) -> str:
        if isinstance(x, EndOfStream):
            return f"{x.camera}:end"
        return f"{x.camera}:{x.window_id}" if isinstance(x, Verdict) else f"{x.camera}:{x.state}"
    return [kind(x) for x in out]


def test_verdicts_go_out_in_window_order_whatever_order_the_models_finish_in():
    models = ScriptedModels({"a": [0.1] * 4, "b": [0.1] * 4}, parallel=5, auto=False)   # room for one more
    st, out = stage(models)
    for w in range(2):
        for cam in ("a", "b"):
            st.add(scene(cam, w), now=0.0)
    st.step(now=1.0)
    assert len(models.futures) == 4 and out == []          # all out on the models, none finished
    for k in (3, 2, 1):
        models.finish(k)
    st.step(now=1.0)
    assert out == []                                        # the first batch holds the rest back
    models.finish(0)
    st.step(now=1.0)
    submitted = [f"{s.camera}:{s.window_id}" for scenes, _ in models.futures for s in scenes]
    assert kinds(out) == submitted and sorted(submitted) == ["a:0", "a:1", "b:0", "b:1"]


def test_a_window_decided_before_is_dropped_and_counted():
    st, out = stage(ScriptedModels({"a": [0.1, 0.1, 0.1]}))
    for w in (0, 1, 1, 2):                                  # a restarted camera worker sends window 1 again
        st.add(scene("a", w), now=0.0)
        st.step(now=0.0)
    assert kinds(out) == ["a:0", "a:1", "a:2"] and st.duplicates == 1


def test_a_cameras_end_decides_its_waiting_windows_and_closes_its_event_before_it():
    models = ScriptedModels({"a": [0.9, 0.9, 0.9, 0.9]}, max_batch=8)
    models.max_wait_s = 60.0                                # nothing is due on its own: only the end flushes
    st, out = stage(models)
    for w in range(4):
        st.add(scene("a", w), now=0.0)
    st.step(now=0.0)
    assert out == []
    st.add(EndOfStream("a", "finished"), now=0.0)
    assert kinds(out) == ["a:0", "a:open", "a:1", "a:2", "a:3", "a:close", "a:end"]
    assert "a" not in st.trackers and "a" not in st.decided


def test_a_close_waits_for_its_evidence_with_the_cameras_later_messages_behind_it():
    ev = Evidence_()
    st, out = stage(ScriptedModels({"a": [0.9, 0.9, 0.1, 0.1, 0.1], "b": [0.1]}), evidence=ev)
    for w in range(5):
        st.add(scene("a", w), now=0.0)
        st.step(now=0.0)
    assert kinds(out)[-1] == "a:4" and "a:close" not in kinds(out) and len(ev.submitted) == 1
    st.add(scene("b", 0), now=0.0)                          # another camera is not held
    st.add(EndOfStream("a", "finished"), now=0.0)
    assert kinds(out)[-1] == "b:0" and "a:end" not in kinds(out)
    files = (Evidence("keyframe", "k.jpg", "0" * 64, 10),)
    ev.results.put(("a", ev.submitted[0], files))
    st.step(now=0.0)
    assert kinds(out)[-2:] == ["a:close", "a:end"] and out[-2].evidence == files


def test_evidence_before_the_close_goes_out_as_an_update():
    ev = Evidence_()
    st, out = stage(ScriptedModels({"a": [0.9, 0.9, 0.9]}), evidence=ev)
    for w in range(3):
        st.add(scene("a", w), now=0.0)
        st.step(now=0.0)
    files = (Evidence("clip", "c.mp4", "1" * 64, 99),)
    ev.results.put(("a", ev.submitted[0], files))
    st.step(now=0.0)
    assert out[-1].state == "update" and out[-1].evidence == files


def test_the_sequencer_alone():
    sent: list = []
    seq = AlertSequencer(sent.append)

    def alert(state, aid="x", camera="a"):
        return Alert(aid, camera, state, "fall", 0.9, 0.0, 1.0, 0.0, 1.0, "", 0)
    seq.expect_evidence("x")
    seq.send(alert("open"))
    seq.send(alert("close"))
    seq.send(alert("open", aid="y"))
    seq.send(EndOfStream("a", "finished"))
    assert [a.state for a in sent] == ["open"]
    assert not seq.evidence_arrived("a", "z", ())           # not the held close's: nothing released
    assert seq.evidence_arrived("a", "x", ())
    assert [getattr(a, "alert_id", "end") for a in sent] == ["x", "x", "y", "end"] and seq.held == {}


def test_explanations_come_back_as_updates_of_their_alerts():
    models = ScriptedModels({"a": [0.9, 0.9, 0.9]})
    models.explains = True
    st, out = stage(models)
    for w in range(2):
        st.add(scene("a", w), now=0.0)
        st.step(now=0.0)
    done = threading.Event()
    t = threading.Thread(target=st.run_explainer, args=(lambda: not done.is_set(),))
    t.start()
    try:
        text = st.explanations.get(timeout=10)
        st.explanations.put(text)
    finally:
        done.set()
        t.join(5)
    st.step(now=0.0)
    assert out[-1].state == "update" and out[-1].explanation == "a fall from 0 to 1"   # its span when it opened
