"""The bounded queues between stages: lossless blocking vs. drop-oldest with counting."""
import threading

from stream.queues import StageQueue
from stream.types import EndOfStream


def test_drop_oldest_keeps_the_newest_and_counts_what_it_dropped():
    dropped = []
    q = StageQueue(3, policy="drop_oldest", on_drop=dropped.append)
    for i in range(5):
        q.put(i)
    assert [q.get(timeout=0) for _ in range(3)] == [2, 3, 4]
    assert dropped == [0, 1] and q.dropped == 2


def test_an_end_of_stream_is_never_dropped():
    q = StageQueue(2, policy="drop_oldest")
    end = EndOfStream("cam", "finished")
    q.put(end)
    q.put(1)
    q.put(2)          # full: drops 1, never the end
    assert q.get(timeout=0) is end and q.get(timeout=0) == 2 and q.dropped == 1


class W:
    def __init__(self, camera, i):
        self.camera, self.i = camera, i

    def __repr__(self):
        return f"{self.camera}{self.i}"


def test_cameras_share_the_room_fairly_and_a_replayed_file_is_never_dropped():
    dropped = []
    q = StageQueue(4, on_drop=dropped.append)
    q.put(W("file", 0), policy="block")            # a replayed file: lossless
    for i in range(3):
        q.put(W("busy", i), policy="drop_oldest")  # a fast live camera fills the rest
    q.put(W("calm", 0), policy="drop_oldest")      # full: the camera with the most queued pays
    q.put(W("busy", 3), policy="drop_oldest")
    q.put(W("calm", 1), policy="drop_oldest")      # busy 2 queued vs calm 1: busy pays again
    assert [repr(w) for w in dropped] == ["busy0", "busy1", "busy2"]
    assert [repr(q.get(timeout=0)) for _ in range(4)] == ["file0", "calm0", "busy3", "calm1"]


def test_a_live_put_waits_when_only_lossless_items_fill_the_queue():
    q = StageQueue(1)
    q.put(W("file", 0), policy="block")
    abort = threading.Event()
    t = threading.Thread(target=lambda: q.put(W("live", 0), policy="drop_oldest", abort=abort))
    t.start()
    t.join(0.3)
    assert t.is_alive() and q.dropped == 0
    assert repr(q.get(timeout=0)) == "file0"
    t.join(2)
    assert repr(q.get(timeout=0)) == "live0"


def test_blocking_put_waits_for_room_and_abort_frees_it():
    q = StageQueue(1, policy="block")
    q.put("a")
    abort = threading.Event()
    result = []
    t = threading.Thread(target=lambda: result.append(q.put("b", abort=abort)))
    t.start()
    t.join(0.3)
    assert t.is_alive()                     # lossless: it waits instead of dropping
    abort.set()
    t.join(2)
    assert result == [False] and q.get(timeout=0) == "a"
