"""The cue table: hand-read cues of single seconds, and their AUC per category on real features."""
from __future__ import annotations

import numpy as np

from stream.llm.features import KIN_SCALE, Clip
from stream.scene.kinematics import KIN, KINEMATICS
from stream.llm.hawkeye import POSE_CHANNELS
from training.cues import CUES, cues, main, render, table


def clip(speed: float = 0.0, lying: bool = False) -> Clip:
    T, P = 2, 5
    pose = np.zeros((T, P, 17, POSE_CHANNELS), np.float32)
    ys = np.linspace(0.3, 0.6, 17)
    pose[:, 0, :, 0], pose[:, 0, :, 1] = (ys, 0.5) if lying else (0.5, ys)
    pose[:, 0, :, 2] = 0.9
    pose[:, 0, :, 3] = speed
    people = np.zeros((T, P), bool)
    people[:, 0] = True
    kin = np.zeros((T, P, KIN), np.float32)
    kin[:, 0, KINEMATICS.index("speed")] = speed / KIN_SCALE[KINEMATICS.index("speed")]
    kin[:, 0, KINEMATICS.index("lying")] = float(lying)
    return Clip(0.0, 1.0, np.zeros((T, 3, 4, 4), np.float32), np.zeros((T, 3, 4, 4), np.float32), pose, people, kin,
                np.zeros((T, 2, 353), np.float32), np.zeros((T, 2, 2), np.int64), np.zeros((T, 2), bool),
                np.zeros((T, 1 + P, 0), np.float16))


def test_cues_read_speed_and_lying_people():
    still, runner, lying = cues(clip()), cues(clip(speed=2.0)), cues(clip(lying=True))
    k = dict(zip(CUES, range(len(CUES))))
    assert still[k["people"]] == 1.0 and still[k["fastest joint"]] == 0.0
    assert runner[k["fastest joint"]] == runner[k["fastest person"]] == 2.0
    assert lying[k["widest pose"]] > 5 * still[k["widest pose"]] and still[k["widest pose"]] < 0.1
    assert runner[k["fastest feet"]] == 2.0 and lying[k["lying"]] == 1.0 and still[k["lying"]] == 0.0


def test_the_table_covers_every_category_of_the_split(tiny_bench, tiny_gt):
    aucs, counts = table(tiny_bench, tiny_bench / "gt.json", "train", progress=False)
    labels = {a["label"] for e in tiny_gt["database"].values() if e["subset"] == "train" for a in e["annotations"]}
    assert set(aucs) == labels | {"any"} and counts["normal"] > 0
    assert all(0.0 <= a <= 1.0 for row in aucs.values() for a in row)
    assert render(aucs, counts).count("\n| ") == len(aucs)        # a row a category (after the header)


def test_an_unknown_subset_is_an_error(tiny_bench, capsys):
    assert main(["--features", str(tiny_bench), "--gt", str(tiny_bench / "gt.json"), "--subset", "nope"]) == 2
    assert "no videos in subset 'nope'" in capsys.readouterr().err
