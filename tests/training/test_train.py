"""Training from a recipe: the loss falls, the output loads in the pipeline, an interrupted run
resumes to the same weights, and bad recipes are named."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stream.llm.detector import HawkeyeDetector
from stream.llm.hawkeye import load_model
from training.features import read_video
from training.train import load_recipe, train

ROOT = Path(__file__).resolve().parents[2]


def recipe(tiny_bench, out, **more):
    sets = {"data.features": str(tiny_bench), "data.ground_truth": str(tiny_bench / "gt.json"), "out": str(out),
            "model.dim": 32, "model.lm_pretrain_steps": 3, "optim.epochs": 2, "optim.batch_windows": 4,
            "optim.lr": 3e-3, "optim.encoder_lr": 3e-3, "threads": 2, **more}
    return load_recipe(ROOT / "configs" / "train" / "embedded.yaml", sets)


def quiet(*_):
    pass


def test_a_recipe_trains_a_model_the_pipeline_loads(tiny_bench, tmp_path):
    out = train(recipe(tiny_bench, tmp_path / "m"), progress=False, log=quiet)
    import json
    report = json.loads((out / "train_report.json").read_text())
    assert report["steps"] >= 2 and report["final_loss"] < 20 and 0.0 <= report["val_auc"] <= 1.0
    # the val-calibrated threshold travels with the model
    assert 0.0 < report["threshold"] < 1.0
    assert json.loads((out / "hawkeye.json").read_text())["threshold"] == report["threshold"]
    router = report["router"]["all"]                          # the router's use of each expert, on val
    assert set(router) == {"appearance", "motion", "action", "kinematic", "relation"} and abs(sum(router.values()) - 1) < 1e-3
    saved = json.loads((out / "hawkeye.json").read_text())     # and one per category, for the categories it names
    assert len(saved["category_thresholds"]) == len(saved["categories"]) and set(report["category_thresholds"]) == \
        set(saved["categories"]) and all(0.0 < t <= 1.0 for t in saved["category_thresholds"])   # 1.0: none of its own
    assert (out / "lora" / "adapter_config.json").exists()             # adapters kept apart, as Hawkeye ships them
    det = HawkeyeDetector(load_model(out, merge_lora=True), explain=False)
    graphs = read_video(tiny_bench, "test_000").scene_graphs()
    verdicts = det.batch(graphs[:3])
    assert [v.window_id for v in verdicts] == [0, 1, 2] and all(0 <= s.score <= 1 for v in verdicts for s in v.seconds)


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_bench, tmp_path):
    full = train(recipe(tiny_bench, tmp_path / "full", checkpoint_every=100), progress=False, log=quiet)
    r = recipe(tiny_bench, tmp_path / "cut", checkpoint_every=100)
    assert train(r, stop_after=2, progress=False, log=quiet) is None
    assert (tmp_path / "cut.checkpoint" / "state.pt").exists()
    cut = train(r, resume=True, progress=False, log=quiet)
    a = torch.load(full / "encoder.pt", weights_only=True)
    b = torch.load(cut / "encoder.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    assert not (tmp_path / "cut.checkpoint").exists()


def test_ablations_are_recipe_switches(tiny_bench, tmp_path):
    out = train(recipe(tiny_bench, tmp_path / "abl", **{"model.experts": "[appearance, motion, relation]",
                                                        "model.router": "mean", "model.balance_weight": 0,
                                                        "optim.epochs": 0.5, "calibration.category_head": True,
                                                        "calibration.joint": True}), progress=False, log=quiet)
    m = load_model(out)
    assert list(m.encoder.experts) == ["appearance", "motion", "relation"] and m.cfg.router == "mean"
    import json
    head = json.loads((out / "train_report.json").read_text())["category_head"]    # fitted, kept only if it names better
    assert set(head["tried"]) == {"0.003", "0.01", "0.03", "0.1"} and (out / "category_head.pt").exists() == head["kept"]
    assert (m.category_head is not None) == head["kept"]


def test_bad_recipes_are_named(tiny_bench, tmp_path):
    with pytest.raises(ValueError, match="model.lora.r: Input should be greater than or equal to 1"):
        recipe(tiny_bench, tmp_path, **{"model.lora.r": 0})
    with pytest.raises(ValueError, match="optim.learning_rate: unknown key"):
        recipe(tiny_bench, tmp_path, **{"optim.learning_rate": 0.1})
    with pytest.raises(ValueError, match="model.experts"):
        recipe(tiny_bench, tmp_path, **{"model.experts": "[sound]"})
    with pytest.raises(ValueError, match="no such recipe"):
        load_recipe(tmp_path / "none.yaml")
    r = recipe(tiny_bench, tmp_path / "m", **{"data.features": str(tmp_path)})
    with pytest.raises(ValueError, match="have no features"):
        train(r, progress=False, log=quiet)


def test_the_encoder_warm_up_learns_to_tell_the_seconds_apart(tiny_bench, tmp_path):
    """The alignment stage on its own: the probe's loss falls over its epochs, and only the encoder
    (not the LM) changes."""
    from training.train import build_model, load_samples, warm_up_encoder
    r = recipe(tiny_bench, tmp_path / "w")
    model = build_model(r, "cpu", progress=False)
    samples = load_samples(r, model.cfg, "train", progress=False)
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    enc_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    losses = warm_up_encoder(model, samples, 30, 1e-3, "cpu", seed=0, batch=8, progress=False, log=quiet)
    assert len(losses) == 30 and max(losses[-3:]) < 0.5 * losses[0], losses     # it fits the few seconds
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items())
    assert any(not torch.equal(v, model.encoder.state_dict()[k]) for k, v in enc_before.items())
    with pytest.raises(ValueError, match="category labels"):
        warm_up_encoder(model, [], 1, 1e-3, "cpu", seed=0, progress=False, log=quiet)


def test_the_demo_runs_the_shipped_model_the_embedded_recipe_wrote(tiny_bench):
    """configs/demo.yaml names models/hawkeye; that directory loads, and it is what
    configs/train/embedded-real.yaml trains (its report carries the same recipe)."""
    import json
    from stream.config import load_config
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert cfg.detector.name == "hawkeye"
    shipped = cfg.detector.hawkeye.model
    assert shipped.resolve() == (ROOT / "models" / "hawkeye").resolve()
    report = json.loads((shipped / "train_report.json").read_text())
    trained = load_recipe(ROOT / "configs" / "train" / "embedded-real.yaml")     # stage 2 writes models/hawkeye
    assert report["recipe"]["model"] == json.loads(trained.model.model_dump_json())
    assert report["recipe"]["optim"] == json.loads(trained.optim.model_dump_json())
    det = HawkeyeDetector(load_model(shipped, merge_lora=True), explain=False)
    verdicts = det.batch(read_video(tiny_bench, "test_000").scene_graphs()[:2])
    assert all(0 <= s.score <= 1 for v in verdicts for s in v.seconds)


def test_class_balanced_draws_show_every_category_as_often():
    import random
    from training.data import WindowSample
    from training.train import draw
    windows = [WindowSample(f"f{i}", [], [], True, "fall") for i in range(10)] + \
        [WindowSample(f"r{i}", [], [], True, "running") for i in range(2)] + \
        [WindowSample(f"n{i}", [], [], False) for i in range(12)]
    order = draw(windows, 0.5, random.Random(0), balanced=True)
    count = lambda c: sum(w.category == c for w in order)   # noqa: E731
    assert count("fall") == count("running") == 6 and count("normal") == 12
    assert {w.video for w in windows if w.category == "running"} <= {w.video for w in order}
    later = draw(windows, 0.5, random.Random(1), balanced=True)       # another epoch, other falls
    assert {w.video for w in later if w.category == "fall"} != {w.video for w in order if w.category == "fall"}
    plain = draw(windows, 0.5, random.Random(0))
    assert sum(w.category == "running" for w in plain) == 2


def test_a_category_gets_a_threshold_of_its_own_only_where_it_beats_discovery_on_val():
    import numpy as np
    from stream.llm.detector import second_scores
    from stream.llm.hawkeye import HawkeyeConfig
    from training.train import calibrate
    cats = ("normal", "fall", "running")
    cfg = HawkeyeConfig(categories=cats)
    rng = np.random.default_rng(0)
    labels = np.array(["normal"] * 50 + ["fall"] * 20 + ["running"] * 3)
    yes = np.r_[rng.uniform(0, 0.25, 50), rng.uniform(0.5, 1.0, 20), rng.uniform(0.1, 0.15, 3)]
    probs = np.zeros((73, 3))
    probs[:, 0] = 1 - yes
    probs[:70, 1] = yes[:70]                 # normal and fall seconds: the category model says fall
    probs[70:, 2] = yes[70:]                 # running seconds: it says running, though discovery is unsure
    out = calibrate(cfg, yes, probs, labels)
    assert out.threshold > yes[70:].max()                        # discovery alone misses the runs...
    normal, fall, running = out.category_thresholds
    assert normal == 1.0 and fall == 1.0                         # ...and needs no help with the falls
    assert running <= yes[70:].min() and running > 0.0
    scores, named = second_scores(torch.tensor(yes), torch.tensor(probs), cats, out.threshold, out.category_thresholds)
    assert all(s >= 0.5 for s in scores[70:]) and {cats[i] for i in named["top"][70:]} == {"running"}
    assert all(s < 0.5 for s in scores[:50])
    assert [cats[i] for i, s in zip(named["top"][50:70], scores[50:70]) if s >= 0.5] == ["fall"] * 20


def test_calibration_keeps_the_normal_seconds_over_the_threshold_under_the_share_asked():
    import numpy as np
    from stream.llm.hawkeye import HawkeyeConfig
    from training.train import calibrate
    cats = ("normal", "fall")
    rng = np.random.default_rng(1)
    labels = np.array(["normal"] * 400 + ["fall"] * 40)
    yes = np.r_[rng.uniform(0.0, 0.6, 400), rng.uniform(0.3, 1.0, 40)]   # normal seconds reach well into the falls'
    probs = np.c_[1 - yes, yes]
    f2_only = calibrate(HawkeyeConfig(categories=cats), yes, probs, labels)
    bounded = calibrate(HawkeyeConfig(categories=cats), yes, probs, labels, normal_over=0.02)
    assert (yes[:400] >= f2_only.threshold).mean() > 0.04                # best F2 alarms on normal seconds
    assert (yes[:400] >= bounded.threshold).mean() <= 0.02 + 1e-9
    assert bounded.category_thresholds[1] == 1.0 or (yes[:400] >= bounded.category_thresholds[1]).mean() <= 0.02



def test_the_bound_on_normal_seconds_holds_for_discovery_and_every_category_together():
    """Each category's own threshold keeps 5 % of normal seconds over it, but a second crosses when
    any one does: as the detector scores them, at most 5 % of the normal seconds may cross."""
    import numpy as np
    from stream.llm.detector import second_scores
    from stream.llm.hawkeye import HawkeyeConfig
    from training.train import calibrate
    cats = ("normal", "fall", "running", "scuffle")
    rng = np.random.default_rng(3)
    labels = np.array(["normal"] * 600 + ["fall"] * 40 + ["running"] * 40 + ["scuffle"] * 40)
    kind = np.r_[rng.integers(1, 4, 600), np.repeat([1, 2, 3], 40)]       # each second leans to one category
    yes = np.r_[rng.uniform(0.0, 0.7, 600), rng.uniform(0.3, 0.9, 120)]
    lean = np.full((720, 3), 0.1)                                         # anomalies lean harder than normal seconds
    lean[np.arange(720), kind - 1] = np.r_[rng.uniform(0.3, 0.9, 600), np.full(120, 0.95)]
    probs = np.c_[1 - yes, yes[:, None] * lean]
    def crossing(joint):
        cfg = calibrate(HawkeyeConfig(categories=cats), yes, probs, labels, normal_over=0.05, joint=joint)
        assert sum(t < 1.0 for t in cfg.category_thresholds) == 3        # each with a threshold of its own
        scores, _ = second_scores(torch.tensor(yes), torch.tensor(probs), cats, cfg.threshold, cfg.category_thresholds)
        return (np.array(scores)[:600] >= 0.5).mean(), (np.array(scores)[600:] >= 0.5).mean()
    assert crossing(joint=False)[0] > 0.10                               # each bounded alone: together over twice the share
    normal, anomalous = crossing(joint=True)
    assert normal <= 0.05 + 1e-9 and anomalous > 0.3                      # and it still finds anomalies


@pytest.mark.parametrize("classes", [("fall", "scuffle"), ("fall", "running", "scuffle")])
def test_the_category_head_gives_the_logistic_regressions_probabilities(classes):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from training.train import head_from_logistic
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (len(classes), 6))
    y = np.repeat(classes, 40)
    x = centres[np.repeat(np.arange(len(classes)), 40)] + rng.normal(0, 1, (len(y), 6))
    mean, scale = x.mean(0), x.std(0)
    fit = LogisticRegression(C=0.1, max_iter=2000).fit((x - mean) / scale, y)
    categories = ["abandoned", "fall", "running", "scuffle"]          # abandoned: never fitted
    head = head_from_logistic(fit, mean, scale, categories)
    p = head(torch.as_tensor(x, dtype=torch.float32)).numpy()
    want = fit.predict_proba((x - mean) / scale)
    np.testing.assert_allclose(p[:, [categories.index(c) for c in fit.classes_]], want, atol=1e-4)
    assert p[:, 0].max() < 1e-9 and (np.array(categories)[p.argmax(1)] == fit.predict((x - mean) / scale)).all()
