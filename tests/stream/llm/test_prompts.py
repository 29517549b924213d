"""The answer parser on what a model may say: well-formed, sloppy, random and hostile text."""
from __future__ import annotations

import random
import string

import pytest

from stream.llm.prompts import CATEGORIES, CHAT, DISCOVERY, GROUNDING, corpus, parse_answer


@pytest.mark.parametrize("text, anomalous, category, span", [
    (" Yes", True, None, None),
    ("no.", False, None, None),
    ("Answer: Yes, a person falls from 2 to 3 seconds.", True, "fall", (2.0, 3.0)),
    (" From 3 to 1.", None, None, (1.0, 3.0)),                   # reversed: ordered
    ("from <1.5> to <9>", None, None, (1.5, 4.0)),              # clamped to a 4 s window
    ("From 2s - 3s", None, None, (2.0, 3.0)),
    ("YES!!! two men fighting", True, "scuffle", None),
    (" abandoned object", None, "abandoned", None),
    ("Yesterday it rained", None, None, None),                  # "Yes" must be a word
    ("", None, None, None),
])
def test_answers_are_read(text, anomalous, category, span):
    a = parse_answer(text, window_s=4.0)
    assert (a.anomalous, a.category, a.span) == (anomalous, category, span)


def test_random_and_hostile_text_never_raises():
    rng = random.Random(7)
    alphabet = string.printable + "ÄöüßЖ中文🙂\x00\u202e\ufeff"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(2000)]
    samples += ["from 1e999 to 2", "from -1 to 1e308", "From nan to 3", "Answer:" * 10_000, "9" * 100_000,
                "from " + "1" * 5000 + " to 2", None, 42, b"Yes", ["Yes"], object()]

    class Evil:
        def __str__(self):
            raise RuntimeError("no")
    samples.append(Evil())
    for s in samples:
        a = parse_answer(s, window_s=4.0)
        assert isinstance(a.text, str) and len(a.text) <= 4000
        if a.span is not None:
            assert 0.0 <= a.span[0] <= a.span[1] <= 4.0
        assert a.category in (None, *CATEGORIES)


def test_prompts_hold_one_video_placeholder_and_the_corpus_covers_them():
    for p in (DISCOVERY, GROUNDING.format(seconds=4), CHAT.format(question="Is anyone running?")):
        assert p.count("<video>") == 1 and p.endswith("Answer:")
    text = "\n".join(corpus())
    assert all(c in text for c in CATEGORIES) and " Yes" in text and " No" in text


def test_chat_answers_name_stream_times():
    from stream.llm.prompts import answer_described
    said = answer_described([("fall", 12, 15), ("running", 13, 16)])
    assert said == " A person falls to the ground from 12 to 15 seconds; a person suddenly runs from 13 to 16 seconds."
    assert parse_answer(said).span == (12.0, 15.0) and parse_answer(said).category == "fall"
    assert answer_described([]) == " People walk normally."
