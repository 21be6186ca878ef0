"""``base:ke_anhp``: a knowledge-graph-aware attentive neural Hawkes process (the LAMP paper's KE-ANHP).

For a query (s, r, ?, t) (object task; subject queries are (o, r + R, ?, t)) or (s, ?, o, t)
(relation task), with only events strictly before t (rows < history_end; single-step setting):

1. History encoding, once per (entity, time) in a batch: the last ``history`` events of the entity in
   either role (as object through the inverse relation), each token = other entity + relation +
   continuous-time encoding of ``t - t_i`` (sinusoids over log-spaced periods in dataset steps plus
   ``log1p``), pooled by multi-head attention whose query is the entity's own embedding (the tokens
   serve as keys and values), with a learned null token for empty histories.
2. A query representation z from [e_s, e_r, h_s] (object) or [e_s, e_o, h_s, h_o] (relation).
3. The log-intensity of every candidate as ONE matrix product, ``z @ E^T + b`` over all entities
   (or relations), plus a learned weighting of sparse recurrency features of the candidate:
   count, share and recency of (s, r, c) before t and of (s, *, c) over s's last
   ``max_relaxed_events`` events (the weights depend on the query relation). Without the features
   (``recurrency_features=False``) it is the plain attentive model.

Training maximises the categorical (mark) part of the TPP log-likelihood, ``log lambda_c(t) -
log sum_c' lambda_c'(t)``, as a full softmax over all candidates (no sampled negatives: exact, and
cheap at ICEWS sizes). The time term (when the next (s, r) event happens) is omitted: given (s, r, t)
it is the same for every candidate, so it cannot change any ranking lamp reports. Examples are the
train events (both directions for the object task) with their own strictly-earlier train histories;
the epoch is selected by valid filtered MRR (average ties).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lamp.components import make_settings, not_in_key
from lamp.data.eventlog import EventLog
from lamp.data.history import concat_ranges
from lamp.data.queries import QuerySet
from lamp.errors import ArtifactError, ConfigError
from lamp.nn import TrainConfig, TrainReport, resolve_device, run_training, seed_everything
from lamp.tpp.base import BaseModel, filtered_gold_rank
from lamp.tpp.sequences import FeatureIndex, KGBatch, make_kg_batch

logger = logging.getLogger(__name__)

TASKS = ("object", "relation", "predicate")
N_FREQ = 16  # sinusoid pairs of the continuous-time encoding


@dataclass(frozen=True)
class KEANHPSettings:
    """Hyperparameters of ``base:ke_anhp``. Only the epoch is chosen (by filtered MRR on valid); the other
    defaults were set by hand when the model was written, not searched (the ICEWS14/18 runs in
    benchmarks/results/bench_neural.md use them)."""

    dim: int = 128
    history: int = 32
    heads: int = 4
    dropout: float = 0.2
    recurrency_features: bool = True
    max_relaxed_events: int = 512
    batch_size: int = 1024
    epochs: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 2
    label_smoothing: float = 0.0
    valid_queries: int | None = None  # seeded sample of valid queries for epoch selection; None = all
    seed: int = 0
    device: str = "auto"
    progress: bool | None = not_in_key(None)  # None: follow the stage (lamp.progress)

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"dim ({self.dim}) must be divisible by heads ({self.heads}).")
        if self.history < 1:
            raise ConfigError(f"history must be >= 1, got {self.history}.")


class KEANHPNet(nn.Module):
    """The network: see the module docstring. ``forward`` returns log-intensities [B, candidates]."""

    def __init__(self, task: str, num_entities: int, num_relations: int, s: KEANHPSettings, n_feat: int) -> None:
        super().__init__()
        d = s.dim
        self.task, self.num_relations = task, num_relations
        self.ent = nn.Embedding(num_entities, d)
        self.rel = nn.Embedding(2 * num_relations, d)
        nn.init.normal_(self.ent.weight, std=d**-0.5)
        nn.init.normal_(self.rel.weight, std=d**-0.5)
        self.heads = s.heads
        self.freq: torch.Tensor
        self.register_buffer("freq", torch.logspace(0.0, -3.0, N_FREQ), persistent=False)  # periods 1..1000 steps
        self.time_proj = nn.Linear(2 * N_FREQ + 1, d)
        self.tok_norm = nn.LayerNorm(d)
        self.q_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.null = nn.Parameter(torch.zeros(1, 1, d))
        self.attn_drop = nn.Dropout(s.dropout)
        self.h_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(s.dropout), nn.Linear(2 * d, d))
        n_in = 3 * d if task == "object" else 4 * d
        self.head = nn.Sequential(nn.Dropout(s.dropout), nn.Linear(n_in, 2 * d), nn.GELU(), nn.Dropout(s.dropout),
                                  nn.Linear(2 * d, d))
        n_cand = num_entities if task == "object" else num_relations
        self.bias = nn.Parameter(torch.zeros(n_cand))
        self.n_feat = n_feat
        if n_feat:
            self.w0 = nn.Parameter(torch.zeros(n_feat))
            self.w_rel = nn.Linear(d, n_feat)  # object task: feature weights depend on the query relation
            nn.init.zeros_(self.w_rel.weight)
            nn.init.zeros_(self.w_rel.bias)
            self.w_cand = nn.Embedding(num_relations, n_feat)  # relation task: on the candidate relation
            nn.init.zeros_(self.w_cand.weight)

    def encode_histories(self, b: KGBatch) -> torch.Tensor:
        """h [U, d] for the batch's unique (entity, time) pairs."""
        dt = b.tok_dt.clamp(min=0.0)
        ang = dt[..., None] * self.freq
        te = self.time_proj(torch.cat([torch.sin(ang), torch.cos(ang), torch.log1p(dt)[..., None]], dim=-1))
        tok = self.tok_norm(self.ent(b.tok_other) + self.rel(b.tok_rel) + te)  # [U, K, d]
        U, K, d = tok.shape
        keys = torch.cat([self.null.expand(U, 1, -1), tok], dim=1).view(U, K + 1, self.heads, d // self.heads)
        pad = torch.cat([torch.zeros(U, 1, dtype=torch.bool, device=tok.device), ~b.tok_mask], dim=1)
        e = self.ent(b.pair_entity)
        q = self.q_proj(e).view(U, self.heads, d // self.heads)
        # keys double as values: tokens are already learned mixtures, so no K/V projections (the hot loop)
        att = torch.einsum("uhc,ukhc->uhk", q, keys) * (d // self.heads) ** -0.5
        att = self.attn_drop(torch.softmax(att.masked_fill(pad[:, None, :], float("-inf")), dim=-1))
        out = torch.einsum("uhk,ukhc->uhc", att, keys).reshape(U, d)
        h = self.h_norm(e + self.out_proj(out))
        return h + self.ffn(h)

    def forward(self, b: KGBatch) -> torch.Tensor:
        h = self.encode_histories(b)
        if self.task == "object":
            z = self.head(torch.cat([self.ent(b.s), self.rel(b.r), h[b.pair_s]], dim=-1))
            scores = torch.addmm(self.bias, z, self.ent.weight.T)
        else:
            z = self.head(torch.cat([self.ent(b.s), self.ent(b.o), h[b.pair_s], h[b.pair_o]], dim=-1))
            scores = torch.addmm(self.bias, z, self.rel.weight[: self.num_relations].T)
        if self.n_feat and b.feat_owner.numel():
            if self.task == "object":
                w = self.w0 + self.w_rel(self.rel(b.r))[b.feat_owner]
            else:
                w = self.w0 + self.w_cand(b.feat_value)
            scores = scores.index_put_((b.feat_owner, b.feat_value), (b.feat * w).sum(-1), accumulate=True)
        return scores


def _group_by_subject_time(ex: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The examples sorted by (subject, time), and the boundaries of each (subject, time) group."""
    order = np.lexsort((ex["time"], ex["s"]))
    ex = {k: v[order] for k, v in ex.items()}
    change = (np.diff(ex["s"]) != 0) | (np.diff(ex["time"]) != 0)
    return ex, np.concatenate([[0], np.flatnonzero(change) + 1, [len(order)]]).astype(np.int64)


class KEANHP(BaseModel):
    """``base:ke_anhp``; ``KEANHP(epochs=10).fit(log, train_q, valid_q)``, then ``.score(log, test_q, top_m)``."""

    vocabulary_bound = True  # one learned embedding per training entity (see lamp.Pipeline.predict)

    name = "ke_anhp"
    Settings = KEANHPSettings

    def __init__(self, settings: KEANHPSettings | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.settings = make_settings(KEANHPSettings, settings, overrides, where="base model 'ke_anhp'")
        self.device = resolve_device(self.settings.device)
        self.net: KEANHPNet | None = None
        self.task = ""
        self.fit_fingerprint: str | None = None
        self.report: TrainReport | None = None
        self._index: FeatureIndex | None = None

    def _model_task(self, queries: QuerySet) -> str:
        if queries.task not in TASKS:
            raise ConfigError(f"base:ke_anhp scores tasks {', '.join(TASKS)}; got task={queries.task!r}. "
                              "Use base:nhp / base:anhp for type, or a heuristic baseline.")
        return "object" if queries.task == "object" else "relation"

    def _new_net(self, num_entities: int, num_relations: int, task: str) -> KEANHPNet:
        n_feat = FeatureIndex.n_features(task) if self.settings.recurrency_features else 0
        return KEANHPNet(task, num_entities, num_relations, self.settings, n_feat).to(self.device)

    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        """Train on the events of ``log``'s train split; select the epoch by filtered MRR on ``valid``.

        The examples are every train event (both directions for the object task) with its own earlier
        train history, whatever ``train`` holds: ``train`` only names the task.
        """
        s = self.settings
        self.task = self._model_task(train)
        if self._model_task(valid) != self.task:
            raise ConfigError(f"train task {train.task!r} and valid task {valid.task!r} differ; build both "
                              "query sets for the same task.")
        gen = seed_everything(s.seed)
        end = log.split_ends[0]
        index = FeatureIndex.build(log, self.task, end=end, max_relaxed=s.max_relaxed_events)
        ex, groups = _group_by_subject_time(index.train_examples(log, end))
        self.net = self._new_net(log.num_entities, log.num_relations, self.task)
        self.fit_fingerprint, self._index = log.fingerprint(), None
        vq = valid.sample(s.valid_queries, seed=s.seed)

        def batches(epoch: int) -> Any:
            # whole (subject, time) groups per batch: each history is encoded once for all its queries
            perm = torch.randperm(len(groups) - 1, generator=gen).numpy()
            owner, pos = concat_ranges(groups[perm], groups[perm + 1])
            sizes = np.diff(groups)[perm]
            batch_of = ((np.cumsum(sizes) - sizes) // s.batch_size)[owner]
            cuts = np.flatnonzero(np.diff(batch_of)) + 1
            for sel in np.split(pos, cuts):
                yield make_kg_batch(index, {k: v[sel] for k, v in ex.items()}, s.history, self.device,
                                   s.recurrency_features)

        def loss_fn(b: KGBatch) -> torch.Tensor:
            assert self.net is not None and b.target is not None
            return F.cross_entropy(self.net(b), b.target, label_smoothing=s.label_smoothing)

        def evaluate() -> float:
            ranks = [filtered_gold_rank(self.score_batch(log, vq, p), vq, p)
                     for p in np.array_split(np.arange(len(vq)), max(1, -(-len(vq) // s.batch_size)))]
            return float(np.mean(1.0 / np.concatenate(ranks)))

        cfg = TrainConfig(epochs=s.epochs, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience, seed=s.seed,
                          progress=s.progress)
        self.report = run_training(self.net, batches=batches, loss_fn=loss_fn, evaluate=evaluate, config=cfg,
                                   desc="base:ke_anhp")
        return {"task": self.task, "train_examples": int(len(ex["target"])), "valid_queries": len(vq),
                **self.report.to_dict()}

    def _index_for(self, log: EventLog) -> FeatureIndex:
        idx = self._index
        if idx is None or idx.fingerprint != log.fingerprint() or idx.n_rows != len(log):
            idx = self._index = FeatureIndex.build(log, self.task, end=None,
                                                   max_relaxed=self.settings.max_relaxed_events)
        return idx

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise ConfigError("base:ke_anhp is not fitted; call fit() or load() first.")
        if self._model_task(queries) != self.task:
            raise ConfigError(f"base:ke_anhp was fitted for the {self.task} task; it cannot score {queries.task!r}.")
        f = queries.frame
        pos = np.asarray(positions, dtype=np.int64)
        q = {"s": f["subject"].to_numpy()[pos], "r": f["relation"].to_numpy()[pos], "o": f["object"].to_numpy()[pos],
             "time": f["time"].to_numpy()[pos], "history_end": f["history_end"].to_numpy()[pos]}
        b = make_kg_batch(self._index_for(log), q, self.settings.history, self.device, self.settings.recurrency_features)
        self.net.eval()
        with torch.no_grad():
            scores = self.net(b).float().cpu().numpy()
        if queries.task == "predicate":
            from lamp.tpp.sequences import root_logsumexp
            from lamp.tpp.task_history import relation_roots

            return root_logsumexp(scores, relation_roots(log), queries.num_candidates).astype(np.float32)
        return scores

    def save(self, path: Path) -> None:
        """Weights (safetensors) + settings and task (JSON) through :mod:`lamp.tpp.checkpoint`."""
        from lamp.tpp.checkpoint import save_checkpoint

        if self.net is None:
            raise ConfigError("base:ke_anhp is not fitted; nothing to save. Call fit() first.")
        config = {"settings": asdict(self.settings), "task": self.task, "num_entities": self.net.ent.num_embeddings,
                  "num_relations": self.net.num_relations}
        save_checkpoint(path, kind=self.name, tensors=dict(self.net.state_dict()), config=config,
                        fingerprint=self.fit_fingerprint)

    @classmethod
    def load(cls, path: Path, log: EventLog | None = None, *, device: str = "auto") -> KEANHP:
        """Strict load; with ``log``, its sizes and fingerprint must match the data it was fitted on."""
        from lamp.tpp.checkpoint import load_checkpoint, read_checkpoint_meta

        cfg = read_checkpoint_meta(path).get("config", {})
        try:
            model = cls(**{**cfg["settings"], "device": device})
            model.task = str(cfg["task"])
            sizes = (int(cfg["num_entities"]), int(cfg["num_relations"]))
        except (KeyError, TypeError, ConfigError) as exc:
            raise ArtifactError(f"{path}: not a base:ke_anhp checkpoint config ({exc}). Refit and save again.") from exc
        if log is not None and sizes != (log.num_entities, log.num_relations):
            raise ArtifactError(f"{path} was fitted with {sizes[0]} entities / {sizes[1]} relations, but {log.name!r} "
                                f"has {log.num_entities} / {log.num_relations}. Load it with the data it was fitted on.")
        net = model._new_net(*sizes, model.task)
        ckpt = load_checkpoint(path, kind=cls.name, expected_tensors=set(net.state_dict()),
                               fingerprint=None if log is None else log.fingerprint(), framework="pt")
        try:
            net.load_state_dict(ckpt.tensors, strict=True)
        except RuntimeError as exc:
            raise ArtifactError(f"{path}: the saved weights do not fit the saved settings ({exc}). Refit and save.") from exc
        model.net, model.fit_fingerprint = net.eval(), ckpt.data_fingerprint
        return model
