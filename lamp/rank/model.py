"""The energy network: continuous-time attention over a candidate's evidence events.

Each (query, candidate) is a token sequence ``[candidate, evidence_1 .. evidence_L]``. A token is the
sum of: a projection of its (subject, relation, object) embeddings; a time encoding of how long before
the query it happened (sin/cos of ``log(1 + dt)`` at geometric frequencies, then a linear map; the
candidate has ``dt = 0``); a projection of five overlap flags with the candidate (evidence subject ==
candidate subject, subject == object, object == subject, object == object, same relation), which
generalise across entities the embeddings never saw; and a kind embedding (candidate / evidence).
With ``num_features`` > 0 the candidate token also gets an MLP of its standardised ranking features
(:mod:`lamp.rank.features`: base score and rank, history counts, evidence summary), and with
``entity_embeddings=False`` every entity shares one embedding, so the network cannot memorise
entities from a few thousand queries and must rely on relations, timing, overlaps and features.
A small transformer encoder (padding-masked) mixes them; the candidate token's output gives the energy
(lower = more plausible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lamp.rank.examples import RankExample

NUM_MATCH = 5


@dataclass(frozen=True)
class Batch:
    """Padded arrays for B queries x M candidates x (1 + L) tokens (token 0 = the candidate)."""

    ids_BMT3: np.ndarray  # int64 subject, relation, object (object -1 = none)
    logdt_BMT: np.ndarray  # float32 log(1 + query_time - event_time)
    match_BMT5: np.ndarray  # float32 overlap flags with the candidate
    pad_BMT: np.ndarray  # bool, True = padding
    base_BM: np.ndarray  # float32 base-model scores
    gold_B: np.ndarray  # int64 gold position, -1 = not in the top-M
    feat_BMF: np.ndarray  # float32 ranking features ([B, M, 0] when the examples have none)
    relevant_BM: np.ndarray  # bool true answers (the gold alone when the examples do not say)


def collate(examples: Sequence[RankExample], max_evidence: int) -> Batch:
    """Pad examples (all with the same M) into arrays; each evidence list keeps its last ``max_evidence``."""
    b, m = len(examples), examples[0].num_candidates if examples else 0
    t = 1 + max_evidence
    ids = np.zeros((b, m, t, 3), dtype=np.int64)
    ids[..., 2] = -1
    logdt = np.zeros((b, m, t), dtype=np.float32)
    match = np.zeros((b, m, t, NUM_MATCH), dtype=np.float32)
    pad = np.ones((b, m, t), dtype=bool)
    for i, ex in enumerate(examples):
        if ex.num_candidates != m:
            from lamp.errors import ConfigError

            raise ConfigError(f"all examples must have the same number of candidates; query {ex.query_id} has "
                              f"{ex.num_candidates}, expected {m}.")
        ids[i, :, 0] = ex.candidates
        pad[i, :, 0] = False
        for j, ev in enumerate(ex.evidence_events):
            ev = ev[-max_evidence:] if max_evidence else ev[:0]
            n = len(ev)
            if not n:
                continue
            s, r, o = ev[:, 1].astype(np.int64), ev[:, 2].astype(np.int64), ev[:, 3].astype(np.int64)
            ids[i, j, 1 : 1 + n] = np.stack([s, r, o], axis=1)
            logdt[i, j, 1 : 1 + n] = np.log1p(np.maximum(ex.query_time - ev[:, 0], 0.0))
            cs, cr, co = ex.candidates[j]
            match[i, j, 1 : 1 + n] = np.stack([s == cs, s == co, (o == cs) & (o >= 0), (o == co) & (o >= 0), r == cr],
                                              axis=1)
            pad[i, j, 1 : 1 + n] = False
    base = np.stack([ex.base_scores for ex in examples]).astype(np.float32) if b else np.zeros((0, 0), np.float32)
    gold = np.array([ex.gold for ex in examples], dtype=np.int64)
    n_feat = examples[0].features.shape[1] if b and examples[0].features is not None else 0
    feat = np.zeros((b, m, n_feat), dtype=np.float32)
    relevant = np.zeros((b, m), dtype=bool)
    for i, ex in enumerate(examples):
        if n_feat:
            if ex.features is None or ex.features.shape != (m, n_feat):
                from lamp.errors import ConfigError

                raise ConfigError(f"query {ex.query_id}: features {getattr(ex.features, 'shape', None)}, expected "
                                  f"{(m, n_feat)} like the other examples of the batch.")
            feat[i] = ex.features
        if ex.relevant is not None:
            relevant[i] = ex.relevant
        if ex.gold >= 0:
            relevant[i, ex.gold] = True
    return Batch(ids, logdt, match, pad, base, gold, feat, relevant)


def take(batch: Batch, idx: np.ndarray) -> Batch:
    return Batch(batch.ids_BMT3[idx], batch.logdt_BMT[idx], batch.match_BMT5[idx], batch.pad_BMT[idx],
                 batch.base_BM[idx], batch.gold_B[idx], batch.feat_BMF[idx], batch.relevant_BM[idx])


class EnergyNet(nn.Module):
    """Energy of each (query, candidate) from its evidence sequence; see the module docstring."""

    def __init__(self, num_entities: int, num_relations: int, *, dim: int = 64, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1, time_features: int = 8, num_features: int = 0,
                 entity_embeddings: bool = True) -> None:
        super().__init__()
        self.num_entities = num_entities
        self.entity_embeddings = entity_embeddings
        # last row: "no object"; without entity embeddings row 0 stands for every entity
        self.entity = nn.Embedding(num_entities + 1 if entity_embeddings else 2, dim)
        self.num_features = num_features
        self.feat_mean: torch.Tensor
        self.feat_std: torch.Tensor
        self.register_buffer("feat_mean", torch.zeros(num_features))  # set from the training examples
        self.register_buffer("feat_std", torch.ones(num_features))
        self.features = nn.Sequential(nn.Linear(num_features, dim), nn.GELU(), nn.Linear(dim, dim)) \
            if num_features else None
        self.relation = nn.Embedding(num_relations, dim)
        self.event = nn.Linear(3 * dim, dim)
        self.time = nn.Linear(2 * time_features, dim)
        self.match = nn.Linear(NUM_MATCH, dim)
        self.kind = nn.Embedding(2, dim)
        self.freqs: torch.Tensor
        self.register_buffer("freqs", 2.0 ** torch.linspace(-2.0, 3.0, time_features), persistent=False)
        # One dropout on the input tokens instead of inside every sublayer: on CPU, drawing the masks
        # of eight dropouts per step took a quarter of the training time.
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))

    def forward(self, ids_NT3: torch.Tensor, logdt_NT: torch.Tensor, match_NT5: torch.Tensor,
                pad_NT: torch.Tensor, feat_NF: torch.Tensor | None = None) -> torch.Tensor:
        """Energies ``[N]`` for N flattened (query, candidate) sequences (``feat_NF``: raw features)."""
        none = self.num_entities if self.entity_embeddings else 1
        subj = ids_NT3[..., 0] if self.entity_embeddings else torch.zeros_like(ids_NT3[..., 0])
        obj = ids_NT3[..., 2] if self.entity_embeddings else torch.zeros_like(ids_NT3[..., 2])
        obj = torch.where(ids_NT3[..., 2] < 0, torch.full_like(obj, none), obj)
        parts = torch.cat([self.entity(subj), self.relation(ids_NT3[..., 1]), self.entity(obj)], dim=-1)
        angle = logdt_NT.unsqueeze(-1) * self.freqs
        kind = torch.ones_like(pad_NT, dtype=torch.long)
        kind[:, 0] = 0
        h = self.event(parts) + self.time(torch.cat([angle.sin(), angle.cos()], dim=-1)) + self.match(match_NT5)
        if self.features is not None and feat_NF is not None:
            token0 = self.features((feat_NF - self.feat_mean) / self.feat_std)
            h = torch.cat([h[:, :1] + token0.unsqueeze(1), h[:, 1:]], dim=1)
        h = self.encoder(self.drop(h + self.kind(kind)), src_key_padding_mask=pad_NT)
        return self.head(self.norm(h[:, 0])).squeeze(-1)
