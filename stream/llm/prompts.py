"""The questions the model is asked, the answers it is taught, and a parser that turns any text it
generates into a structured answer without ever raising.

Prompts follow Hawkeye's paradigm: discovery ("is there implicit anomalous sentiment?"),
category, grounding ("From <s1> to <s2>"), and free chat. Every prompt holds one `<video>`, where
the window's video tokens go, and ends with "Answer:"; answers start with a space, so " Yes" is
one token whose probability is the fast score.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from stream.llm.hawkeye import VIDEO_TOKEN

CATEGORIES = ("normal", "fall", "scuffle", "chase", "running", "dispersal", "loitering", "abandoned", "theft")
CATEGORY_NAMES = {"abandoned": "abandoned object"}      # category -> how people say it

DISCOVERY = f"{VIDEO_TOKEN}\nIs there any implicit anomalous sentiment in this video? Answer Yes or No.\nAnswer:"
CATEGORY = (f"{VIDEO_TOKEN}\nWhat kind of anomaly is it? Choose one of: "
            + ", ".join(CATEGORY_NAMES.get(c, c) for c in CATEGORIES) + ".\nAnswer:")
GROUNDING = (f"{VIDEO_TOKEN}\nThe video runs from 0 to {{seconds}} seconds. When does the anomaly happen? "
             "Answer as: From <s1> to <s2>.\nAnswer:")
EXPLAIN = f"{VIDEO_TOKEN}\nDescribe what is anomalous in this video and when.\nAnswer:"
CHAT = f"{VIDEO_TOKEN}\n{{question}}\nAnswer:"

# Answers as training writes them (training/ builds its targets from these).
EXPLANATIONS = {
    "fall": "a person falls to the ground",
    "scuffle": "two people scuffle and push each other",
    "chase": "one person chases another",
    "running": "a person suddenly runs",
    "dispersal": "the people suddenly scatter in all directions",
    "loitering": "a person lingers in one place for a long time",
    "abandoned": "a bag is left behind on the ground",
    "theft": "someone picks up a bag another person left and walks off with it",
    "normal": "people walk normally",
}


# What operators ask on a camera (chat), and the answers training teaches (training/qa.py builds
# them from the benchmark's ground truth and the scene stage's graphs). Times are stream seconds.
COUNT_QUESTION = "How many people are there?"
YES_NO_QUESTIONS = {          # question -> the categories that make its answer yes
    "Is anyone running?": ("running", "chase"),
    "Is anyone lying on the ground?": ("fall",),
    "Is there a fight?": ("scuffle",),
    "Is someone chasing someone?": ("chase",),
    "Did the people scatter?": ("dispersal",),
    "Is anyone loitering?": ("loitering",),
    "Was a bag left behind?": ("abandoned", "theft"),
    "Did anyone take a bag?": ("theft",),
}
DESCRIBE_QUESTION = "What happened between {t1:g} and {t2:g} seconds?"
PLACES = ("on the left", "in the middle", "on the right")


def answer_count(n: int) -> str:
    return f" {n}."


def answer_yes_no_chat(yes: bool, where: str | None = None) -> str:
    return (" Yes" + (f", {where} of the view." if where else ".")) if yes else " No."


def answer_described(events: list[tuple[str, float, float]]) -> str:
    """(category, start, end) in stream seconds -> " A person falls from 12 to 15 seconds." (or normal)."""
    if not events:
        return " " + EXPLANATIONS["normal"].capitalize() + "."
    parts = [f"{EXPLANATIONS[c]} from {a:g} to {b:g} seconds" for c, a, b in events]
    return " " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + "."


def answer_yes_no(anomalous: bool) -> str:
    return " Yes" if anomalous else " No"


def answer_category(category: str) -> str:
    return " " + CATEGORY_NAMES.get(category, category)


def answer_span(start: float, end: float) -> str:
    return f" From {start:g} to {end:g}."


def explanation_lead(category: str) -> str:
    """The start of the explanation answer of `category`: " A person falls to the ground"."""
    return " " + EXPLANATIONS.get(category, category).capitalize()


def answer_explanation(category: str, start: float, end: float) -> str:
    return f"{explanation_lead(category)} from {start:g} to {end:g} seconds."


@dataclass(frozen=True)
class Answer:
    text: str                                  # the generated text, trimmed
    anomalous: bool | None = None              # a leading yes / no, if any
    category: str | None = None                # the first known category named
    span: tuple[float, float] | None = None    # "from <s1> to <s2>", ordered and clamped to the window


_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
_SPAN = re.compile(r"from\s*<?\s*(-?\d+(?:\.\d+)?)\s*>?\s*(?:s|sec|secs|seconds)?\s*(?:to|until|-)\s*<?\s*"
                   r"(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_WORDS = re.compile(r"[a-z]+")
_SYNONYMS = {w: c for c, words in {
    "fall": "falls fell falling fallen", "scuffle": "scuffles fight fights fighting push pushes pushing",
    "chase": "chases chasing chased", "running": "run runs ran", "dispersal": "scatter scatters disperse disperses",
    "loitering": "lingers loiters loiter linger", "abandoned": "abandon left",
    "theft": "steal steals stole stolen thief takes took"}.items() for w in words.split()}
_MAX_TEXT = 4000


def parse_answer(text, window_s: float | None = None) -> Answer:
    """Any generated text (any object, any length) -> an Answer; never raises."""
    try:
        s = text if isinstance(text, str) else str(text)
    except Exception:  # noqa: BLE001 - an object whose str() fails is still "no answer"
        return Answer("")
    s = s.replace("\x00", "")[:_MAX_TEXT].strip()
    answer = s.split("Answer:")[-1].strip() if "Answer:" in s else s
    yn = _YES_NO.match(answer)
    anomalous = None if yn is None else yn.group(1).lower() == "yes"
    category = next((_SYNONYMS.get(w, w) for w in _WORDS.findall(answer.lower()) if _SYNONYMS.get(w, w) in CATEGORIES),
                    None)
    span = None
    m = _SPAN.search(answer)
    if m:
        try:
            a, b = sorted((float(m.group(1)), float(m.group(2))))
            if window_s is not None:
                a, b = min(max(a, 0.0), window_s), min(max(b, 0.0), window_s)
            if math.isfinite(a) and math.isfinite(b):
                span = (a, b)
        except (ValueError, OverflowError):
            span = None
    return Answer(answer, anomalous, category, span)


def corpus() -> list[str]:
    """Every prompt and answer form: the text the embedded tokenizer is trained on."""
    lines = [DISCOVERY, CATEGORY, EXPLAIN]
    for n in range(1, 61):
        lines.append(GROUNDING.format(seconds=n))
        for a in range(0, n):
            lines.append(answer_span(a, min(n, a + 1 + (n - a) // 2)))
    for c in CATEGORIES:
        lines += [answer_category(c)] * 20 + [answer_explanation(c, 1, 3)] * 5
    lines += [answer_yes_no(True), answer_yes_no(False)] * 200
    lines += [CHAT.format(question=q) for q in (
        "What is happening on this camera?", "Where did the people go?", COUNT_QUESTION, *YES_NO_QUESTIONS)] * 5
    lines += [answer_count(n) for n in range(0, 21)] * 3
    lines += [answer_yes_no_chat(True, w) for w in (None, *PLACES)] * 5 + [answer_yes_no_chat(False)] * 10
    for t in range(0, 120, 2):
        lines.append(CHAT.format(question=DESCRIBE_QUESTION.format(t1=t, t2=t + 4)))
        lines.append(answer_described([(CATEGORIES[1 + t % (len(CATEGORIES) - 1)], t + 1, t + 3)]))
    lines.append(answer_described([]))
    return lines
