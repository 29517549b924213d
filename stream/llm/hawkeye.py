"""The Hawkeye model (ACM MM 2024) as its paper describes it, with Hawk's motion tokens.

Per 1-second clip of a window:

    appearance frames ─► FrameEncoder ──────────────┐ appearance expert (with appearance_dim, plus the
                                                    │ pretrained features of the people's crops)
    flow-masked frames ─► FrameEncoder ─────────────┤ motion expert (Hawk)
    skeletons (T, P, 17) ─► ActionGraphEncoder ─────┤ action expert: graph attention over joints, then time
    kinematics (T, P, KIN) ─► KinematicEncoder ─────┤ kinematic expert: speeds, posture, pairs, over people and time
    triples (T, K, 353) ─► RelationGraphEncoder ────┘ relation expert: graph transformer over D^-1/2 A D^-1/2
                      │
        router R(h) = softmax(h W_g);  fused = LN(Σ_i R_i(h) E_i)   (+ L_bc balancing loss)
                      │
        projector ─► video tokens that replace the <video> placeholder of a prompt in a causal LM
                     (transformers) with LoRA adapters (peft).
                      │
        mean of a clip's tokens ─► CategoryHead: which anomaly, given that it is one (fitted after training)

The released code simplifies (no graph attention, no balancing loss, one-layer experts); this
follows the paper. Shapes: B clips, T frames a clip, P people, K triples, d = `dim`.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import torch
from torch import nn

from stream.scene.kinematics import KIN
from stream.scene.pose import COCO17_EDGES

VIDEO_TOKEN = "<video>"
POSE_CHANNELS = 6          # per joint: x, y (fractions of the frame), score, vx, vy (body heights a second),
                           # and the person's dwell (tens of seconds stayed in place, up to 3)


@dataclass(frozen=True)
class HawkeyeConfig:
    dim: int = 128                       # encoder and expert width
    heads: int = 4
    tokens_per_frame: int = 2            # fused tokens each frame contributes to the LM
    thumb_size: tuple[int, int] = (64, 48)   # (width, height) of appearance and motion frames
    appearance_dim: int = 0              # 0: the appearance expert learns from the thumbnails only; 1280: it also
                                         # reads EfficientNet-Lite0's features of each person's crop
    appearance_frame: bool = False       # and of the whole frame (see PretrainedAppearanceEncoder)
    max_people: int = 5                  # as Hawkeye's (5, 17, 5) pose features
    max_triples: int = 16
    rel_dim: int = 353                   # 51 predicate + 151 subject + 151 object probabilities
    experts: tuple[str, ...] = ("appearance", "motion", "action", "kinematic", "relation")
    router: str = "softmax"              # "mean": no MoE, the experts averaged (the paper's ablation)
    tau: float = 0.07                    # L_bc temperature
    balance_weight: float = 0.2          # λ
    lora_r: int = 16                     # the paper's LoRA: r 16, alpha 64, dropout 0.05, all linear layers
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_targets: str | tuple[str, ...] = "all-linear"
    answer_yes: str = " Yes"             # answers start with a space (prompts end with "Answer:")
    answer_no: str = " No"
    categories: tuple[str, ...] = field(default=("normal",))
    threshold: float = 0.5               # P(" Yes") at which a second is anomalous: set by training on val (best F2)
    category_thresholds: tuple[float, ...] = ()   # per category (in `categories` order; normal's unused): the
                                         # P(" Yes")·P(category | anomalous) at which a second is that category's
                                         # anomaly, set on val (best F2 each); empty: only `threshold`

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> HawkeyeConfig:
        raw = json.loads(path.read_text())
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


class FrameEncoder(nn.Module):
    """(B, T, 3, H, W) frames in 0..1 -> (B, T, n, d): a small conv net (group-normalised, so a
    batch of one behaves as in training), n tokens a frame from n vertical strips of the image,
    each pooled both by mean (the scene) and by max (a small thing that stands out: people are a
    few pixels tall in a thumbnail)."""

    def __init__(self, dim: int, n: int):
        super().__init__()
        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, 2, 1), nn.GroupNorm(8, cout), nn.GELU()]
        self.net = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.Conv2d(128, dim, 3, 1, 1))
        self.mean, self.max = nn.AdaptiveAvgPool2d((1, n)), nn.AdaptiveMaxPool2d((1, n))
        self.out = nn.Linear(2 * dim, dim)
        self.n = n

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        B, T = frames.shape[:2]
        x = self.net(frames.flatten(0, 1))                                     # (B*T, d, h, w)
        x = torch.cat([self.mean(x), self.max(x)], 1).flatten(2).transpose(1, 2)   # (B*T, n, 2d)
        return self.out(x).reshape(B, T, self.n, -1)


class PretrainedAppearanceEncoder(nn.Module):
    """The scene from the thumbnails (FrameEncoder), plus what the people look like: pretrained
    features (B, T, 1 + P, A) of the crops of the people in the action expert's slots (slots 1..P;
    people (B, T, P) says who is there), normalised, embedded and pooled (masked mean and max: how
    they look on the whole, and the one who looks unlike the rest: lying, struggling, carrying)
    -> (B, T, n, d). With `use_frame`, the whole frame's pretrained features (slot 0) as well: on
    the benchmark they let the model tell its composited scenes apart instead of what people do
    (router weight 0.60 on val, test AP 57.0 against 64.8 without pretrained features at all)."""

    def __init__(self, dim: int, n: int, features: int, use_frame: bool = False):
        super().__init__()
        self.scene = FrameEncoder(dim, n)
        self.frame = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, dim), nn.GELU()) if use_frame else None
        self.person = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, dim), nn.GELU())
        self.empty = nn.Parameter(torch.zeros(dim))                      # a frame without people
        self.out = nn.Linear((3 if use_frame else 2) * dim, n * dim)
        self.n = n

    def forward(self, frames: torch.Tensor, features: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
        B, T = features.shape[:2]
        x = self.person(features[:, :, 1:])                              # (B, T, P, d)
        m = people.unsqueeze(-1).float()
        none = m.sum(2) == 0
        mean = torch.where(none, self.empty, (x * m).sum(2) / m.sum(2).clamp(min=1.0))
        top = torch.where(none, self.empty, x.masked_fill(m == 0, -1e4).amax(2))
        parts = ([self.frame(features[:, :, 0])] if self.frame is not None else []) + [mean, top]
        return self.scene(frames) + self.out(torch.cat(parts, -1)).reshape(B, T, self.n, -1)


def skeleton_adjacency() -> torch.Tensor:
    a = torch.eye(17, dtype=torch.bool)
    for i, j in COCO17_EDGES:
        a[i, j] = a[j, i] = True
    return a


class ActionGraphEncoder(nn.Module):
    """Skeletons (B, T, P, 17, POSE_CHANNELS) (x, y in 0..1 of the frame, score, velocity in body
    heights a second, dwell) -> (B, T, n, d).

    Graph attention over each skeleton's joints (attention only along bones), then attention over
    time for each person and joint, then people pooled (masked mean and max)."""

    def __init__(self, dim: int, heads: int, n: int):
        super().__init__()
        self.embed = nn.Linear(POSE_CHANNELS, dim)
        self.joint = nn.Parameter(torch.randn(17, dim) * 0.02)
        self.register_buffer("bones", ~skeleton_adjacency(), persistent=False)   # True: not allowed
        self.spatial = nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, batch_first=True, norm_first=True)
        self.out = nn.Linear(2 * dim, n * dim)
        self.n = n

    def forward(self, pose: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
        B, T, P = pose.shape[:3]
        x = self.embed(pose) + self.joint                                        # (B, T, P, 17, d)
        d = x.shape[-1]
        x = self.spatial(x.reshape(-1, 17, d), src_mask=self.bones)               # along bones
        x = x.reshape(B, T, P, 17, d).permute(0, 2, 3, 1, 4).reshape(-1, T, d)   # (B*P*17, T, d)
        seen = people.permute(0, 2, 1).unsqueeze(2).expand(B, P, 17, T).reshape(-1, T)
        hidden = ~seen
        hidden[hidden.all(dim=1)] = False              # nobody there at any time: attend freely, masked below
        x = self.temporal(x, src_key_padding_mask=hidden)
        x = x.reshape(B, P, 17, T, d).permute(0, 3, 1, 2, 4).mean(dim=3)         # (B, T, P, d) joints pooled
        m = people.unsqueeze(-1).float()
        mean = (x * m).sum(2) / m.sum(2).clamp(min=1.0)
        top = x.masked_fill(m == 0, -1e4).amax(2).masked_fill(m.sum(2) == 0, 0.0)
        return self.out(torch.cat([mean, top], -1)).reshape(B, T, self.n, d)


class KinematicEncoder(nn.Module):
    """People's kinematics (B, T, P, KIN) (scene/kinematics.py, scaled near 1) -> (B, T, n, d): each
    person-frame embedded, attention over all people and frames of the clip (who approaches whom,
    who keeps running), then people pooled per frame (masked mean and max)."""

    def __init__(self, dim: int, heads: int, n: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(KIN, dim), nn.GELU(), nn.Linear(dim, dim))
        self.slot_time = nn.Parameter(torch.randn(64, dim) * 0.02)      # frame position inside the clip
        self.mix = nn.TransformerEncoderLayer(dim, heads, 2 * dim, 0.0, batch_first=True, norm_first=True)
        self.empty = nn.Parameter(torch.zeros(dim))                      # a frame without people
        self.out = nn.Linear(2 * dim, n * dim)
        self.n = n

    def forward(self, kin: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
        B, T, P = kin.shape[:3]
        x = self.embed(kin) + self.slot_time[:T, None]                          # (B, T, P, d)
        d = x.shape[-1]
        hidden = ~people.reshape(B, T * P)
        anyone = ~hidden.all(1)
        hidden[~anyone] = False                   # nobody in the clip: attend freely, masked below
        x = self.mix(x.reshape(B, T * P, d), src_key_padding_mask=hidden).reshape(B, T, P, d)
        m = people.unsqueeze(-1).float()
        mean = (x * m).sum(2) / m.sum(2).clamp(min=1.0)
        top = x.masked_fill(m == 0, -1e4).amax(2)
        none = m.sum(2) == 0
        mean, top = torch.where(none, self.empty, mean), torch.where(none, self.empty, top)
        return self.out(torch.cat([mean, top], -1)).reshape(B, T, self.n, d)


def normalized_adjacency(nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Triples (..., K, 2) subject/object entity ids, mask (..., K) -> D^-1/2 (A + I) D^-1/2 over
    the triples, two triples adjacent when they share an entity."""
    s, o = nodes[..., 0], nodes[..., 1]
    share = ((s.unsqueeze(-1) == s.unsqueeze(-2)) | (s.unsqueeze(-1) == o.unsqueeze(-2))
             | (o.unsqueeze(-1) == s.unsqueeze(-2)) | (o.unsqueeze(-1) == o.unsqueeze(-2)))
    both = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    a = (share & both).float()
    eye = torch.eye(a.shape[-1], device=a.device)
    a = torch.maximum(a, eye * mask.unsqueeze(-1).float())
    deg = a.sum(-1).clamp(min=1.0).rsqrt()
    return deg.unsqueeze(-1) * a * deg.unsqueeze(-2)


class RelationGraphEncoder(nn.Module):
    """Triples (B, T, K, 353) with entity ids (B, T, K, 2) -> (B, T, n, d): a graph transformer
    layer (attention restricted to adjacent triples, then propagation over D^-1/2 A D^-1/2), then
    the triples pooled."""

    def __init__(self, dim: int, heads: int, n: int, rel_dim: int):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(rel_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.prop = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.n1, self.n2, self.n3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.empty = nn.Parameter(torch.zeros(dim))    # a frame without relations
        self.out = nn.Linear(dim, n * dim)
        self.heads, self.n = heads, n

    def forward(self, rows: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, K = rows.shape[:3]
        adj = normalized_adjacency(nodes, mask).reshape(B * T, K, K)
        m = mask.reshape(B * T, K)
        x = self.embed(rows).reshape(B * T, K, -1)
        blocked = adj == 0
        blocked = blocked & ~torch.eye(K, dtype=torch.bool, device=x.device)    # a row can always see itself
        h = self.n1(x)
        x = x + self.attn(h, h, h, attn_mask=blocked.repeat_interleave(self.heads, 0), need_weights=False)[0]
        x = x + self.prop(adj @ self.n2(x))
        x = x + self.ffn(self.n3(x))
        w = m.unsqueeze(-1).float()
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1.0)
        pooled = torch.where(w.sum(1) > 0, pooled, self.empty)
        return self.out(pooled).reshape(B, T, self.n, -1)


class HeterogeneousMoE(nn.Module):
    """Experts of different kinds, each on its own modality, mixed per frame by a softmax router on
    their joint summary h: out = LN(Σ_i R_i(h) E_i), with the balance loss L_bc = σ²(T)/μ(T),
    T = P ∘ M, P_i = Σ_j R_i(h_j), M_i = Σ_j exp(ω_j^i / τ), ω the router's log-probabilities (see balance_loss)."""

    def __init__(self, dim: int, experts: int, tau: float, router: str = "softmax"):
        super().__init__()
        if router not in ("softmax", "mean"):
            raise ValueError(f"router must be softmax or mean, not {router!r}")
        self.gate = nn.Linear(dim * experts, experts, bias=False)     # W_g
        nn.init.zeros_(self.gate.weight)   # start evenly routed, where L_bc is 0 (exp(ω/τ) amplifies any tilt)
        self.norm = nn.LayerNorm(dim)
        self.tau, self.mean = tau, router == "mean"

    def forward(self, outputs: list[torch.Tensor], valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """outputs: E tensors (B, T, n, d); valid (B, T) -> fused (B, T, n, d), router (B, T, E), L_bc."""
        stacked = torch.stack(outputs, dim=2)                                   # (B, T, E, n, d)
        h = stacked.mean(dim=3).flatten(2)                                      # (B, T, E*d)
        logits = self.gate(h)
        if self.mean:                     # no routing: every expert weighs the same, nothing to balance
            logits = torch.zeros_like(logits)
        router = logits.softmax(-1)
        fused = self.norm((router[..., None, None] * stacked).sum(2))
        return fused, router, balance_loss(logits[valid], self.tau)


def balance_loss(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """(N, E) router logits of N frames -> L_bc = σ²(T)/μ(T), T = P ∘ M (0 when the experts are
    used evenly). Two choices where the paper leaves room:
    - P and M are means over the frames where the paper writes sums: the same loss divided by N²,
      so that its size (and what λ means) does not depend on the batch size;
    - ω are the router's log-probabilities (log-softmax of the logits), so exp(ω/τ) = R^(1/τ) <= 1.
      The router is the same for any shift of a frame's logits and so is this loss; exp of raw
      logits / 0.07 overflows float32 once a logit passes 6.2, and the loss turns to NaN."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    log_r = logits.float().log_softmax(-1)
    p = log_r.exp().mean(0)
    m = torch.exp(log_r / tau).mean(0)
    t = p * m
    return t.var(unbiased=False) / t.mean().clamp(min=1e-30)


@dataclass
class ClipBatch:
    """Model inputs for B clips, padded (tensors; see stream/llm/features.py)."""
    frames: torch.Tensor        # (B, T, 3, H, W) 0..1
    motion: torch.Tensor        # (B, T, 3, H, W) 0..1, the frame where it moves, else 0
    frame_mask: torch.Tensor    # (B, T) bool
    pose: torch.Tensor          # (B, T, P, 17, POSE_CHANNELS) x, y in 0..1 of the frame, score, vx, vy, dwell
    people: torch.Tensor        # (B, T, P) bool
    kinematics: torch.Tensor    # (B, T, P, KIN) scaled near 1
    rel: torch.Tensor           # (B, T, K, 353)
    rel_nodes: torch.Tensor     # (B, T, K, 2) long
    rel_mask: torch.Tensor      # (B, T, K) bool
    appearance: torch.Tensor    # (B, T, 1 + P, A) pretrained features of the frame and the people (A = 0: none)

    def to(self, device) -> ClipBatch:
        return ClipBatch(**{k: v.to(device) for k, v in self.__dict__.items()})


class SceneEncoder(nn.Module):
    """Clips -> video tokens in the LM's embedding space, and the balance loss."""

    def __init__(self, cfg: HawkeyeConfig, lm_dim: int):
        super().__init__()
        d, n = cfg.dim, cfg.tokens_per_frame
        kinds = {"appearance": lambda: PretrainedAppearanceEncoder(d, n, cfg.appearance_dim, cfg.appearance_frame)
                 if cfg.appearance_dim
                 else FrameEncoder(d, n), "motion": lambda: FrameEncoder(d, n),
                 "action": lambda: ActionGraphEncoder(d, cfg.heads, n),
                 "kinematic": lambda: KinematicEncoder(d, cfg.heads, n),
                 "relation": lambda: RelationGraphEncoder(d, cfg.heads, n, cfg.rel_dim)}
        unknown = set(cfg.experts) - set(kinds)
        if unknown or not cfg.experts:
            raise ValueError(f"unknown experts {sorted(unknown)}; choose from {sorted(kinds)}")
        self.experts = nn.ModuleDict({k: kinds[k]() for k in cfg.experts})
        self.pretrained = bool(cfg.appearance_dim)        # the appearance expert also reads ClipBatch.appearance
        self.moe = HeterogeneousMoE(d, len(cfg.experts), cfg.tau, cfg.router)
        self.time = nn.Parameter(torch.randn(64, 1, d) * 0.02)        # frame position inside the span
        self.projector = nn.Sequential(nn.Linear(d, lm_dim), nn.GELU(), nn.Linear(lm_dim, lm_dim))

    def forward(self, b: ClipBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> tokens (B, T*n, lm_dim), token mask (B, T*n), router (B, T, E), L_bc."""
        run = {"appearance": lambda e: e(b.frames, b.appearance, b.people) if self.pretrained else e(b.frames), "motion": lambda e: e(b.motion),
               "action": lambda e: e(b.pose, b.people), "kinematic": lambda e: e(b.kinematics, b.people),
               "relation": lambda e: e(b.rel, b.rel_nodes, b.rel_mask)}
        outs = [run[k](e) for k, e in self.experts.items()]
        fused, router, l_bc = self.moe(outs, b.frame_mask)
        T, n = fused.shape[1], fused.shape[2]
        fused = fused + self.time[:T]
        tokens = self.projector(fused).flatten(1, 2)
        return tokens, b.frame_mask.repeat_interleave(n, dim=1), router, l_bc


class CategoryHead(nn.Module):
    """Which anomaly a second is, given that it is one: a multinomial logistic regression over its
    scene embedding (`HawkeyeModel.scene_embeddings`), standardised, fitted on the train split's
    anomalous seconds once the model is trained (training/train.py: `fit_category_head`). It
    names the category where the LM's first answer token cannot: the tiny LM, taught mostly
    synthetic categories, answered `abandoned` or `loitering` for real falls. (N, lm_dim) ->
    (N, len(categories)) P(category | anomalous), over `categories`: the model's own, normal left out."""

    def __init__(self, dim: int, categories: tuple[str, ...]):
        super().__init__()
        self.categories = tuple(categories)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.linear = nn.Linear(dim, len(self.categories)).requires_grad_(False)    # fitted, not trained

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear((embeddings - self.mean) / self.scale).softmax(-1)

    def save(self, path: Path) -> None:
        torch.save({"categories": list(self.categories), "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: Path) -> CategoryHead:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        head = cls(saved["state"]["mean"].shape[0], tuple(saved["categories"]))
        head.load_state_dict(saved["state"])
        return head


class HawkeyeModel(nn.Module):
    """The scene encoder and a causal LM (LoRA-adapted) that reads its tokens in place of `<video>`,
    and, once fitted, the category head."""

    def __init__(self, cfg: HawkeyeConfig, lm, tokenizer):
        super().__init__()
        self.cfg, self.lm, self.tokenizer = cfg, lm, tokenizer
        self.encoder = SceneEncoder(cfg, lm.get_input_embeddings().embedding_dim)
        self.category_head: CategoryHead | None = None
        self._prompt_ids: dict[str, tuple[torch.Tensor, int]] = {}
        self.video_id = tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        if self.video_id is None or self.video_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {VIDEO_TOKEN} token")

    # -- building the LM's input ------------------------------------------------------------------
    def _ids(self, prompt: str) -> tuple[torch.Tensor, int]:
        """The prompt's token ids and the position of its <video> (cached: prompts repeat)."""
        if prompt not in self._prompt_ids:
            ids = self.tokenizer(prompt, add_special_tokens=True, return_tensors="pt").input_ids[0]
            at = (ids == self.video_id).nonzero()
            if len(at) != 1:
                raise ValueError(f"a prompt needs exactly one {VIDEO_TOKEN}, this one has {len(at)}: {prompt!r}")
            if len(self._prompt_ids) > 256:
                self._prompt_ids.clear()
            self._prompt_ids[prompt] = (ids, int(at[0]))
        return self._prompt_ids[prompt]

    def embed(self, prompts: list[str], clips: ClipBatch, spans: list[list[int]],
              encoded: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompts (each with one <video>), clips, and for each prompt the clip indices whose tokens
        replace its <video> -> left-padded inputs_embeds (N, L, D), attention mask (N, L), L_bc.
        `encoded` is the encoder's output for these clips, when already computed."""
        tokens, tmask, _, l_bc = encoded or self.encoder(clips)
        emb = self.lm.get_input_embeddings()
        seqs = []
        for prompt, span in zip(prompts, spans):
            ids, at = self._ids(prompt)
            video = torch.cat([tokens[i][tmask[i]] for i in span]) if span else tokens.new_zeros(0, tokens.shape[-1])
            ids = ids.to(tokens.device)
            seqs.append(torch.cat([emb(ids[:at]), video, emb(ids[at + 1:])]))
        width = max(len(s) for s in seqs)
        out = tokens.new_zeros(len(seqs), width, tokens.shape[-1])
        mask = torch.zeros(len(seqs), width, dtype=torch.long, device=tokens.device)
        for i, s in enumerate(seqs):
            out[i, width - len(s):], mask[i, width - len(s):] = s, 1
        return out, mask, l_bc

    def next_token_logits(self, prompts: list[str], clips: ClipBatch, spans: list[list[int]],
                          encoded: tuple | None = None) -> torch.Tensor:
        """(N, vocab) logits of the token after each prompt. Prompts are run in groups of equal
        text, so short prompts are not padded to the longest; only the last position's logits
        are computed. `encoded`: the encoder's output for these clips, when already computed."""
        tokens = encoded or self.encoder(clips)
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p, []).append(i)
        out: torch.Tensor | None = None
        for prompt, rows in groups.items():
            embeds, mask, _ = self.embed([prompt] * len(rows), clips, [spans[i] for i in rows], encoded=tokens)
            logits = self.lm(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=1).logits[:, -1]
            if out is None:
                out = logits.new_empty(len(prompts), logits.shape[-1])
            out[rows] = logits
        return out

    @staticmethod
    def scene_embeddings(encoded: tuple) -> torch.Tensor:
        """The encoder's output for B clips -> (B, lm_dim) one embedding a clip: the mean of the video
        tokens the LM reads, L2-normalised (what a camera's normal memory compares: stream/detection/normal.py)."""
        tokens, mask = encoded[0], encoded[1]
        pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def head_categories(self, yes: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """P(" Yes") (N,) and scene embeddings (N, lm_dim) -> (N, C) a distribution over
        `cfg.categories` from the category head: normal 1 - P(" Yes"), each other category
        P(" Yes")·P(category | anomalous) (0 for one the head was not fitted on)."""
        head = self.category_head
        given = head(embeddings.to(head.mean.device, torch.float32))
        out = given.new_zeros(len(yes), len(self.cfg.categories))
        for j, c in enumerate(head.categories):
            out[:, self.cfg.categories.index(c)] = yes * given[:, j]
        if "normal" in self.cfg.categories:
            out[:, self.cfg.categories.index("normal")] = 1 - yes
        return out

    def first_token(self, answer: str) -> int:
        """The id of an answer's first token (a lone word-boundary marker skipped)."""
        ids = self.tokenizer(answer, add_special_tokens=False).input_ids
        real = [i for i in ids if self.tokenizer.decode([i]).strip()]
        if not real:
            raise ValueError(f"answer {answer!r} has no token")
        return real[0]

    def yes_probability(self, prompts: list[str], clips: ClipBatch, spans: list[list[int]]) -> torch.Tensor:
        """The fast score: P(" Yes") at the first answer token, one per prompt."""
        return self.next_token_logits(prompts, clips, spans).float().softmax(-1)[:, self.first_token(self.cfg.answer_yes)]

    def loss(self, prompts: list[str], answers: list[str], clips: ClipBatch, spans: list[list[int]]) -> dict[str, torch.Tensor]:
        """Training loss: the LM loss on the answer tokens + λ·L_bc."""
        full = [p + a + self.tokenizer.eos_token for p, a in zip(prompts, answers)]
        embeds, mask, l_bc = self.embed(full, clips, spans)
        labels = torch.full(mask.shape, -100, dtype=torch.long, device=mask.device)
        for i, a in enumerate(answers):
            ids = self.tokenizer(a + self.tokenizer.eos_token, add_special_tokens=False, return_tensors="pt").input_ids[0]
            labels[i, -len(ids):] = ids.to(mask.device)
        lm_loss = self.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss
        return {"loss": lm_loss + self.cfg.balance_weight * l_bc, "lm": lm_loss, "balance": l_bc}

    @torch.inference_mode()
    def generate(self, prompts: list[str], clips: ClipBatch, spans: list[list[int]], max_new_tokens: int = 48,
                 step: Callable[[], ContextManager] = nullcontext) -> list[str]:
        """Greedy decoding with a KV cache, one model call per token, each inside `step()`: a
        caller that shares the model (the detector's scoring) gets it back between any two tokens."""
        with step():
            embeds, mask, _ = self.embed(prompts, clips, spans)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                          logits_to_keep=1)
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        done = torch.zeros(len(prompts), dtype=torch.bool, device=mask.device)
        new: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            nxt = out.logits[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad if pad is not None else eos), nxt)
            new.append(nxt)
            done |= nxt == eos
            if bool(done.all()) or len(new) == max_new_tokens:
                break
            mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], dim=1)
            positions = positions[:, -1:] + 1
            with step():
                # transformers 5 names the KV cache `cache`; 4.x `past_key_values`
                past = {"cache": out.cache} if hasattr(out, "cache") else {"past_key_values": out.past_key_values}
                out = self.lm(input_ids=nxt[:, None], attention_mask=mask, position_ids=positions, use_cache=True,
                              **past)
        ids = torch.stack(new, dim=1) if new else mask.new_zeros(len(prompts), 0)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    # -- saving and loading a model directory -----------------------------------------------------
    def save(self, path: str | Path, merge_lora: bool = False) -> Path:
        """<path>/lm (a Hugging Face checkpoint, LoRA merged or as an adapter in <path>/lora),
        <path>/tokenizer, <path>/hawkeye.json, <path>/encoder.pt and, once fitted,
        <path>/category_head.pt. Merging folds the adapters into this model's LM for good."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        lm, weights = self.lm, None
        if hasattr(lm, "peft_config"):
            if merge_lora:
                lm = lm.merge_and_unload()
                self.lm = lm
            else:
                lm.save_pretrained(path / "lora")
                lm = lm.get_base_model()        # peft wraps layers in place: save them as the plain LM's
                weights = {k.replace(".base_layer", ""): v for k, v in lm.state_dict().items() if "lora_" not in k}
        lm.save_pretrained(path / "lm", state_dict=weights)
        self.tokenizer.save_pretrained(path / "tokenizer")
        self.cfg.save(path / "hawkeye.json")
        torch.save(self.encoder.state_dict(), path / "encoder.pt")
        if self.category_head is not None:
            self.category_head.save(path / "category_head.pt")
        else:
            (path / "category_head.pt").unlink(missing_ok=True)
        return path


def add_lora(lm, cfg: HawkeyeConfig):
    """The LM wrapped with LoRA adapters (peft); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_targets if isinstance(cfg.lora_targets, str) else list(cfg.lora_targets)
    return get_peft_model(lm, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                         target_modules=targets, task_type="CAUSAL_LM"))


def resolve_device(name: str) -> str:
    """"cpu", "cuda" or "auto" (the GPU when torch sees one) -> a torch device name."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda, but this torch sees no GPU (a CPU-only build, or no driver)")
    return name


def load_model(path: str | Path, *, lm_path: str | Path | None = None, device: str = "cpu",
               trainable_lora: bool = False, merge_lora: bool = False) -> HawkeyeModel:
    """A model directory written by `HawkeyeModel.save` (or by training). `lm_path` names another
    local Hugging Face checkpoint directory for the LM (e.g. a Vicuna); nothing is fetched.
    `merge_lora` folds LoRA adapters into the LM for inference; `device` may be "auto"."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    for need in ("hawkeye.json", "encoder.pt", "tokenizer"):
        if not (path / need).exists():
            raise FileNotFoundError(f"{path} is not a Hawkeye model directory: {need} is missing")
    lm_dir = Path(lm_path) if lm_path else path / "lm"
    if not (lm_dir / "config.json").exists():
        raise FileNotFoundError(f"{lm_dir} is not a Hugging Face checkpoint directory (no config.json)")
    cfg = HawkeyeConfig.load(path / "hawkeye.json")
    tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, local_files_only=True)
    if (path / "lora").exists():
        from peft import PeftModel
        lm = PeftModel.from_pretrained(lm, path / "lora", is_trainable=trainable_lora, local_files_only=True)
        if merge_lora:           # inference: fold the adapters into the weights (no extra matmuls per layer)
            lm = lm.merge_and_unload()
    model = HawkeyeModel(cfg, lm, tokenizer)
    model.encoder.load_state_dict(torch.load(path / "encoder.pt", map_location="cpu", weights_only=True))
    if (path / "category_head.pt").exists():
        head = CategoryHead.load(path / "category_head.pt")
        unknown = set(head.categories) - set(cfg.categories)
        if unknown:
            raise ValueError(f"{path / 'category_head.pt'} names categories the model does not have: {sorted(unknown)}")
        model.category_head = head
    return model.to(resolve_device(device)).eval()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

