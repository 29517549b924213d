"""The Hawkeye model: shapes and masks, the balance loss by hand, graph adjacency, LoRA adapters
saved, reloaded and merged, and a local Hugging Face checkpoint loaded by path."""
from __future__ import annotations

import contextlib
from dataclasses import replace
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from stream.llm.features import Clip, clips_of, collate, joint_velocity
from stream.llm.hawkeye import POSE_CHANNELS, ActionGraphEncoder, HawkeyeConfig, balance_loss, load_model, normalized_adjacency
from stream.llm.lm import new_model
from stream.llm.prompts import DISCOVERY, answer_yes_no
from stream.scene.kinematics import KIN
from stream.scene.relations import PRED, Triple

ROOT = Path(__file__).resolve().parents[3]
from stream.types import PersonTrack, SceneGraph


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = new_model()
    with torch.no_grad():                         # LoRA's B starts at zero: give the adapters an effect
        for name, p in m.lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return m.eval()


def scene(seconds: int = 4, people: int = 3, fps: float = 2.0, seed: int = 0) -> SceneGraph:
    rng = np.random.default_rng(seed)
    T = int(seconds * fps)
    ts = np.arange(T) / fps
    tracks = []
    for k in range(people):
        present = rng.random(T) > 0.2
        boxes = np.tile([100 + 80 * k, 100, 140 + 80 * k, 220], (T, 1)).astype(np.float32)
        kps = np.concatenate([rng.uniform(100, 300, (T, 17, 2)), rng.uniform(0.3, 1, (T, 17, 1))], -1).astype(np.float32)
        tracks.append(PersonTrack(k + 1, present, boxes, present.astype(np.float32), kps))
    rel = tuple((Triple(1, 1, PRED["near"], 2, 1, 0.9), Triple(2, 1, PRED["walking on"], -1, 2, 0.7)) for _ in range(T))
    thumbs = rng.integers(0, 255, (T, 48, 64, 3), dtype=np.uint8)
    return SceneGraph("cam", 0, 0.0, float(seconds), ts, ts + 1000, (640, 480), tuple(tracks), relations=rel,
                      thumbs=thumbs, motion_thumbs=thumbs // 2)


def test_clips_batch_shapes_and_masks(model):
    cfg = model.cfg
    clips = clips_of(scene(seconds=3), cfg) + clips_of(scene(seconds=2, fps=1.0), cfg)
    assert [(c.start, c.end, len(c.frames)) for c in clips] == [(0, 1, 2), (1, 2, 2), (2, 3, 2), (0, 1, 1), (1, 2, 1)]
    b = collate(clips, cfg)
    assert b.frames.shape == (5, 2, 3, 48, 64) and b.pose.shape == (5, 2, 5, 17, POSE_CHANNELS) and b.rel.shape == (5, 2, 16, 353)
    assert b.frame_mask.tolist() == [[True, True]] * 3 + [[True, False]] * 2
    assert float(b.pose[..., :2].max()) <= 1.0                 # keypoints as fractions of the frame
    assert b.rel_mask[0, 0].sum() == 2 and b.rel_nodes[0, 0, 0].tolist() == [1, 2]
    tokens, mask, router, l_bc = model.encoder(b)
    n = cfg.tokens_per_frame
    assert tokens.shape == (5, 2 * n, model.lm.get_input_embeddings().embedding_dim)
    assert mask.sum(1).tolist() == [2 * n] * 3 + [n] * 2
    assert router.shape == (5, 2, len(cfg.experts)) and torch.allclose(router.sum(-1), torch.ones(5, 2))
    assert l_bc.ndim == 0 and l_bc >= 0


def test_joint_velocity_is_in_body_heights_a_second_and_a_runner_gets_a_slot():
    T = 8
    ts = np.arange(T) / 2.0
    present = np.ones(T, bool)

    def person(tid, x0, speed_px):          # 100 px tall, moving right at speed_px a second
        x = x0 + speed_px * ts
        boxes = np.stack([x, np.full(T, 100.0), x + 40, np.full(T, 200.0)], 1).astype(np.float32)
        kps = np.zeros((T, 17, 3), np.float32)
        kps[..., 0], kps[..., 1], kps[..., 2] = x[:, None] + 20, 150, 0.9
        return PersonTrack(tid, present.copy(), boxes, np.full(T, 0.9, np.float32), kps)

    idle = [person(k, 50.0 * k, 0.0) for k in range(1, 6)]
    runner = person(9, 0.0, 250.0)                       # 2.5 body heights a second
    v = joint_velocity(runner, ts)
    assert np.allclose(v[0], 0) and np.allclose(v[1:, :, 0], 2.5) and np.allclose(v[..., 1], 0)
    g = SceneGraph("cam", 0, 0.0, 4.0, ts, ts, (640, 480), tuple(idle + [runner]))
    cfg = HawkeyeConfig(max_people=5)
    clip = clips_of(g, cfg)[1]
    assert clip.people.all() and np.allclose(clip.pose[:, 0, :, 3], 2.5)    # the runner comes first
    assert np.allclose(clip.pose[:, 1:, :, 3:], 0)                             # then four of the idle


def test_padding_and_batch_company_do_not_change_a_clips_score(model):
    """A 1-frame clip scored alone, and beside 2-frame clips (its frames padded, its prompt
    left-padded): the same probability."""
    cfg = model.cfg
    short = clips_of(scene(seconds=1, fps=1.0, seed=1), cfg)
    longer = clips_of(scene(seconds=2, fps=2.0, seed=2), cfg)
    with torch.inference_mode():
        alone = model.yes_probability([DISCOVERY], collate(short, cfg), [[0]])
        mixed = model.yes_probability([DISCOVERY] * 2, collate(longer + short, cfg), [[0, 1], [2]])
    assert torch.allclose(alone, mixed[1:], rtol=1e-4, atol=1e-7), (alone, mixed)


def test_absent_people_and_padded_triples_are_ignored():
    torch.manual_seed(0)
    enc = ActionGraphEncoder(32, 4, 2).eval()
    pose = torch.rand(1, 3, 2, 17, POSE_CHANNELS)
    people = torch.tensor([[[True, False]] * 3])
    noisy = pose.clone()
    noisy[:, :, 1] = torch.rand(1, 3, 17, POSE_CHANNELS) * 100          # garbage in the absent person's slot
    with torch.inference_mode():
        assert torch.allclose(enc(pose, people), enc(noisy, people), atol=1e-5)


def test_balance_loss_matches_a_hand_computed_case():
    tau = 0.07
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    # by hand: router rows [3/4, 1/4] and [1/2, 1/2]; ω = log R, so exp(ω/τ) = R^(1/τ);
    # P_i and M_i are means over the N = 2 frames (the paper sums: its loss / N^2)
    r = [[0.75, 0.25], [0.5, 0.5]]
    p = [(r[0][i] + r[1][i]) / 2 for i in range(2)]
    m = [(r[0][i] ** (1 / tau) + r[1][i] ** (1 / tau)) / 2 for i in range(2)]
    t = [p[0] * m[0], p[1] * m[1]]
    mean = (t[0] + t[1]) / 2
    var = ((t[0] - mean) ** 2 + (t[1] - mean) ** 2) / 2
    assert balance_loss(logits, tau).item() == pytest.approx(var / mean, rel=1e-5)
    assert balance_loss(logits + 7.0, tau).item() == pytest.approx(var / mean, rel=1e-5)   # shift-free, like R
    assert balance_loss(torch.zeros(4, 3), tau).item() == pytest.approx(0.0, abs=1e-7)   # even use: no loss


def test_balance_loss_stays_finite_for_a_collapsed_router():
    logits = torch.tensor([[60.0, 0.0, -40.0], [55.0, 1.0, 0.0]], requires_grad=True)
    loss = balance_loss(logits, 0.07)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0.1 and torch.isfinite(logits.grad).all()


def test_relation_adjacency_is_symmetric_normalised_over_shared_entities():
    nodes = torch.tensor([[1, 2], [2, -1], [3, 4], [0, 0]])
    mask = torch.tensor([True, True, True, False])
    a = normalized_adjacency(nodes, mask)
    # triples 0 and 1 share person 2; 2 stands alone; 3 is padding
    raw = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)
    deg = raw.sum(1).clamp(min=1).rsqrt()
    assert torch.allclose(a, deg[:, None] * raw * deg[None, :])
    assert torch.allclose(a, a.T)


def test_lora_adapters_save_reload_and_merge_with_equal_outputs(model, tmp_path):
    cfg = model.cfg
    b = collate(clips_of(scene(), cfg), cfg)
    prompts, spans = [DISCOVERY] * 4, [[i] for i in range(4)]
    with torch.inference_mode():
        want = model.yes_probability(prompts, b, spans)
        with model.lm.disable_adapter():
            without = model.yes_probability(prompts, b, spans)
    assert not torch.allclose(want, without)                 # the adapters matter
    model.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "lora" / "adapter_config.json").exists()
    again = load_model(tmp_path / "adapter")
    with torch.inference_mode():
        assert torch.allclose(again.yes_probability(prompts, b, spans), want, rtol=1e-4, atol=1e-7)
    again.save(tmp_path / "merged", merge_lora=True)
    assert not (tmp_path / "merged" / "lora").exists()
    merged = load_model(tmp_path / "merged")
    with torch.inference_mode():
        assert torch.allclose(merged.yes_probability(prompts, b, spans), want, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_training_step_reduces_the_loss_on_a_fixed_batch(model):
    cfg = model.cfg
    m = new_model(seed=1).train()
    b = collate(clips_of(scene(), cfg), cfg)
    prompts, answers, spans = [DISCOVERY] * 4, [answer_yes_no(i % 2 == 0) for i in range(4)], [[i] for i in range(4)]
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(8):
        out = m.loss(prompts, answers, b, spans)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["lm"])
    assert float(out["lm"]) < first
    frozen = [n for n, p in m.lm.named_parameters() if not p.requires_grad]
    assert frozen and all("lora" not in n for n in frozen)      # LoRA: the LM's own weights stay frozen
    assert all(p.requires_grad for p in m.encoder.parameters())  # encoders, MoE and projector train fully


def test_a_local_checkpoint_directory_loads_by_path(tmp_path):
    """A small Llama and its tokenizer saved to disk, as a user's Vicuna would be: it loads by
    path, gains the <video> token, and answers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from stream.llm.lm import build_tokenizer
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path / "llama")
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=4)).save_pretrained(tmp_path / "llama")
    m = new_model(lm_path=tmp_path / "llama").eval()
    b = collate(clips_of(scene(seconds=1), m.cfg), m.cfg)
    with torch.inference_mode():
        p = m.yes_probability([DISCOVERY], b, [[0]])
    assert p.shape == (1,) and 0 < float(p) < 1
    m.save(tmp_path / "model")
    assert load_model(tmp_path / "model").cfg == m.cfg
    with pytest.raises(FileNotFoundError, match="not a Hugging Face checkpoint directory"):
        new_model(lm_path=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="encoder.pt is missing"):
        (tmp_path / "model" / "encoder.pt").unlink()
        load_model(tmp_path / "model")


def test_an_empty_second_still_gets_a_score(model):
    cfg = model.cfg
    empty = Clip(0.0, 1.0, *(np.zeros((0,) + s, dt) for s, dt in (
        ((3, 48, 64), np.float32), ((3, 48, 64), np.float32), ((5, 17, POSE_CHANNELS), np.float32), ((5,), bool),
        ((5, KIN), np.float32), ((16, 353), np.float32), ((16, 2), np.int64), ((16,), bool),
        ((6, 0), np.float16))))
    with torch.inference_mode():
        p = model.yes_probability([DISCOVERY], collate([empty], cfg), [[0]])
    assert torch.isfinite(p).all()


def test_stepwise_generation_equals_transformers_greedy_generate():
    """The detector's own decoding loop (which hands the model back between tokens) writes what
    transformers' generate writes, for one prompt and for a left-padded batch."""
    from stream.llm.prompts import CHAT, EXPLAIN
    m = load_model(ROOT / "models" / "hawkeye", merge_lora=True)
    clips = clips_of(scene(), m.cfg)
    batch = collate(clips, m.cfg)
    prompts = [EXPLAIN, CHAT.format(question="How many people are there, and is anyone running?")]
    spans = [list(range(len(clips))), [0, 1]]
    steps = []

    def step():
        steps.append(1)
        return contextlib.nullcontext()
    ours = m.generate(prompts, batch, spans, max_new_tokens=24, step=step)
    with torch.inference_mode():
        embeds, mask, _ = m.embed(prompts, batch, spans)
        ref = m.lm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=24, do_sample=False,
                            pad_token_id=m.tokenizer.pad_token_id, eos_token_id=m.tokenizer.eos_token_id)
    assert ours == m.tokenizer.batch_decode(ref, skip_special_tokens=True)
    assert all(ours) and len(steps) >= 2                # one step per token, each inside step()
    assert [m.generate([p], batch, [s], max_new_tokens=24)[0] for p, s in zip(prompts, spans)] == ours


def test_a_waiting_scoring_batch_goes_in_between_two_generated_tokens():
    """Chat never pauses scoring: a batch that arrives while text is being generated takes the
    model at the next token, not after the whole answer."""
    from stream.llm.detector import ModelGate
    gate, order = ModelGate(), []
    third = threading.Event()

    def generate():
        for k in range(8):
            with gate.step():
                order.append(f"token {k}")
                if k == 2:
                    third.set()
                    time.sleep(0.2)        # the batch arrives while this token is computed
    gen = threading.Thread(target=generate)
    gen.start()
    third.wait(5)
    time.sleep(0.05)
    with gate.scoring():
        order.append("batch")
    gen.join(5)
    assert order.index("batch") == 3 and len(order) == 9, order


def test_a_second_crosses_by_discovery_or_by_a_category_of_its_own_and_is_named():
    from stream.llm.detector import second_scores
    cats = ("normal", "fall", "running")
    yes = torch.tensor([0.9, 0.2, 0.2, 0.2])
    q = torch.tensor([[0.1, 0.8, 0.1], [0.8, 0.15, 0.05], [0.2, 0.0, 0.8], [0.2, 0.8, 0.0]])
    scores, out = second_scores(yes, q, cats, 0.5, (1.0, 1.0, 0.1))     # running has a threshold of its own
    assert scores[0] == pytest.approx(0.9) and cats[out["top"][0]] == "fall"   # discovery crossed: the likeliest
    assert scores[1] < 0.5                                                  # nothing crossed
    assert scores[2] > 0.5 and cats[out["top"][2]] == "running"              # running crossed its own: 0.2 > 0.1
    assert scores[3] < 0.5                                                  # fall has none: discovery decides
    np.testing.assert_allclose(out["probabilities"].sum(1), 1.0, rtol=1e-6)
    plain, named = second_scores(yes, q, cats, 0.5, ())                  # a model without category thresholds
    assert plain == pytest.approx([0.9, 0.2, 0.2, 0.2]) and [cats[i] for i in named["top"]] == ["fall", "fall", "running", "fall"]


def test_pretrained_appearance_feeds_the_appearance_expert():
    """A model with appearance_dim reads its people's pretrained features (in the action expert's
    slots) besides the thumbnails, and with appearance_frame the frame's; by default not the
    frame's; a scene graph without them is refused by name."""
    cfg = HawkeyeConfig(appearance_dim=12, appearance_frame=True, max_people=2)
    m = new_model(cfg).eval()
    g = scene(seconds=2, people=3)
    T = len(g.timestamps)
    rng = np.random.default_rng(5)
    tracks = tuple(replace(t, appearance=rng.random((T, 12)).astype(np.float16) * t.present[:, None]) for t in g.tracks)
    g = replace(g, tracks=tracks, appearance=rng.random((T, 12)).astype(np.float16))
    clips = clips_of(g, m.cfg)
    first = clips[0]
    assert first.appearance.shape == (2, 3, 12)
    np.testing.assert_array_equal(first.appearance[:, 0], g.appearance[:2])
    (k,) = [k for k in range(3) if np.array_equal(first.pose[:, 0, :, 2], g.tracks[k].keypoints[:2, :, 2])]
    np.testing.assert_array_equal(first.appearance[:, 1], tracks[k].appearance[:2])   # the first slot's person
    with torch.inference_mode():
        p = m.yes_probability([DISCOVERY], collate(clips, m.cfg), [[0, 1]])
        other = replace(g, appearance=np.zeros_like(g.appearance), thumbs=None)
        q = m.yes_probability([DISCOVERY], collate(clips_of(other, m.cfg), m.cfg), [[0, 1]])
    assert torch.isfinite(p).all() and not torch.allclose(p, q)
    with pytest.raises(ValueError, match="reads 12 pretrained appearance features .* has none"):
        clips_of(scene(), m.cfg)
    crops = new_model(replace(cfg, appearance_frame=False)).eval()     # the default: people's crops, not the frame
    unseen = replace(g, appearance=np.zeros_like(g.appearance))
    faces = replace(g, tracks=tuple(replace(t, appearance=t.appearance[::-1].copy()) for t in tracks))
    with torch.inference_mode():
        p, q, r = (crops.yes_probability([DISCOVERY], collate(clips_of(x, crops.cfg), crops.cfg), [[0, 1]])
                   for x in (g, unseen, faces))
    assert torch.equal(p, q) and not torch.allclose(p, r)


def test_a_model_with_a_category_head_names_by_it_asks_discovery_alone_and_keeps_it_when_saved(tmp_path):
    from stream.llm.detector import HawkeyeDetector
    from stream.llm.hawkeye import CategoryHead
    from stream.llm.prompts import CATEGORIES, CATEGORY
    m = new_model(seed=1)
    m.cfg = replace(m.cfg, threshold=1e-6)                 # every second crosses: the head alone names them
    anomalous = tuple(c for c in CATEGORIES if c != "normal")
    head = CategoryHead(m.encoder.projector[-1].out_features, anomalous)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.fill_(-5.0)
        head.linear.bias[anomalous.index("scuffle")] = 5.0
    m.category_head = head
    asked = []
    real = m.next_token_logits
    m.next_token_logits = lambda prompts, *a, **k: asked.extend(prompts) or real(prompts, *a, **k)
    verdict = HawkeyeDetector(m, explain=False)(scene(seconds=3))
    assert {s.category for s in verdict.seconds} == {"scuffle"} and CATEGORY not in asked and len(asked) == 3
    assert verdict.categories["scuffle"] > 0.9 * (1 - verdict.categories["normal"])
    del m.next_token_logits
    m.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.category_head.categories == anomalous
    torch.testing.assert_close(again.category_head.linear.bias, head.linear.bias)
    again.category_head = None                              # a model without one names by the category prompt
    again.save(tmp_path / "m")
    assert load_model(tmp_path / "m").category_head is None and not (tmp_path / "m" / "category_head.pt").exists()


def test_a_category_head_naming_a_category_the_model_lacks_is_refused(tmp_path):
    from stream.llm.hawkeye import CategoryHead
    m = new_model(seed=1)
    m.category_head = CategoryHead(8, ("fall", "skateboarding"))
    m.save(tmp_path / "m")
    with pytest.raises(ValueError, match="skateboarding"):
        load_model(tmp_path / "m")
