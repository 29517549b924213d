"""The bounded queues between stages: lossless blocking vs. drop-oldest with counting."""
import threading

from stream.pipeline import StageQueue
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
