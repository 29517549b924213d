"""training.probe: a representation that separates the categories is read as such, one that
carries nothing reads at chance, and a bad folder is named."""
from __future__ import annotations

import numpy as np

from training.probe import KINDS, main, probe


def seconds(n: int = 300, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = rng.choice(["normal", "fall", "scuffle"], n, p=[0.6, 0.2, 0.2])
    code = {"normal": 0, "fall": 1, "scuffle": 2}
    onehot = np.eye(3)[[code[x] for x in labels]]
    out = {"label": labels, "subset": np.array(["train", "test"] * (n // 2)), "set": np.full(n, "real"),
           "yes": np.where(labels == "normal", 0.2, 0.8) + rng.normal(0, 0.01, n),
           "asked": np.tile([0.1, 0.8, 0.1], (n, 1)),                # the LM calls everything a fall
           "cues": rng.normal(0, 1, (n, 4)),                          # carries nothing
           "embedding": onehot * 3 + rng.normal(0, 0.3, (n, 3))}      # separates all three
    out["LM state"], out["LM answers"] = out["embedding"], out["cues"]
    return out


def test_a_separating_representation_reads_as_such_and_noise_at_chance():
    rows = {(r["representation"], r["split"]): r for r in probe(seconds(), "train", ["test"], ["normal", "fall", "scuffle"])}
    assert set(rows) == {(k, "real test") for k in ("the LM itself", *KINDS)}
    emb, noise, lm = rows[("embedding", "real test")], rows[("cues", "real test")], rows[("the LM itself", "real test")]
    assert emb["auc"] > 0.99 and emb["fall"] == emb["scuffle"] == 1.0
    assert 0.3 < noise["auc"] < 0.7
    assert lm["auc"] > 0.99 and lm["fall"] == 1.0 and lm["scuffle"] == 0.0 and lm["balanced"] == 0.5


def test_a_folder_without_ground_truth_is_named(tmp_path, capsys):
    assert main(["--model", "models/hawkeye", "--features", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
