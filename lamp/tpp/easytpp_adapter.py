"""easy-tpp's own neural TPP models (NHP, AttNHP, THP, SAHP, RMTPP) behind lamp's BaseModel.

The networks are easy-tpp 0.3.0's classes (``easy_tpp.model.NHP`` ...), built from its
``ModelConfig`` in Python; easy-tpp's YAML runner is never used (it writes checkpoint folders and
``pred.pkl`` into the working directory and installs log handlers). Importing easy-tpp installs a
stdout handler on its ``easytpp.logger``; :func:`import_easytpp` removes it so that the records
propagate to the application's logging like any library's.

What is modelled: flat event types. ``type`` (sequence data: one sequence per subject, e.g. a user)
and ``relation`` (ICEWS/GDELT: one sequence per subject entity whose types are the relations; the
object is NOT modelled, so the candidate relations of (s, ?, o, t) are scored from s's history
alone). ``predicate`` sums the intensities of the relations of each CAMEO root.

Scoring: a query's score for type k is ``log lambda_k(t)`` from easy-tpp's
``compute_intensities_at_sample_times``, read at the position of the LAST real event of the
subject strictly before t (right padding is never read), after the gap to t. The prefix is the
last ``max_len`` such events (rows < history_end): no event of the query's own timestamp is in it.
A subject without history gets the log of the train type frequencies (a documented fallback).

Training (events of the train split only; valid MRR for early stopping and epoch selection):
``objective="tpp"`` (default) is the grouped, strict-prefix TPP log-likelihood: the events of one
subject at one timestamp form a group and each is scored from the state after the previous group,
with the integral term estimated by ``mc_samples`` midpoints per gap (see lamp.tpp.sequences).
``objective="native"`` calls the model's own ``loglike_loss`` on the same windows (same-time events
kept in log order with dt = 0), exactly as easy-tpp trains; it exists for comparisons.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp.components import make_settings, not_in_key
from lamp.data.eventlog import EventLog
from lamp.data.queries import QuerySet
from lamp.errors import ArtifactError, ConfigError, MissingDependencyError
from lamp.nn import TrainConfig, TrainReport, resolve_device, run_training, seed_everything
from lamp.tpp.base import BaseModel, filtered_gold_rank
from lamp.tpp.sequences import (
    EntityEvents,
    Windows,
    build_windows,
    mean_group_gap,
    query_prefixes,
    root_logsumexp,
)

logger = logging.getLogger(__name__)

MODELS = {"nhp": "NHP", "anhp": "AttNHP", "attnhp": "AttNHP", "thp": "THP", "sahp": "SAHP", "rmtpp": "RMTPP"}
ABSOLUTE_SAMPLE_TIMES = {"AttNHP"}  # its compute_intensities_at_sample_times takes times, not gaps
TASKS = ("type", "relation", "predicate")
EPS = 1e-9


def import_easytpp() -> tuple[Any, Any]:
    """easy-tpp's model module and ModelConfig class, with its stdout log handler removed."""
    try:
        import easy_tpp.model as models
        from easy_tpp.config_factory.model_config import ModelConfig
    except ImportError as exc:
        raise MissingDependencyError("easy-tpp", purpose="the easy-tpp base models (nhp, anhp, thp, ...)") from exc
    easy_log = logging.getLogger("easytpp.logger")
    easy_log.handlers = []
    easy_log.propagate = True
    easy_log.setLevel(logging.WARNING)
    return models, ModelConfig


@dataclass(frozen=True)
class EasyTPPSettings:
    """Hyperparameters of an easy-tpp model as lamp trains it (see the module docstring)."""

    model: str = "nhp"
    hidden_size: int = 32
    time_emb_size: int = 16
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.0
    use_ln: bool = False
    max_len: int = 64  # events per training window and per query prefix
    overlap: int = 16  # context events shared by consecutive training windows
    mc_samples: int = 10  # integral-term samples per gap
    objective: str = "tpp"  # "tpp" (grouped strict prefix) | "native" (the model's loglike_loss)
    batch_size: int = 32
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 3
    valid_queries: int | None = 2000  # seeded sample of the valid queries for early stopping; None = all
    seed: int = 0
    device: str = "auto"
    progress: bool | None = not_in_key(None)  # None: follow the stage (lamp.progress)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"Unknown easy-tpp model {self.model!r}. Valid choices are: {', '.join(MODELS)}")
        if self.objective not in ("tpp", "native"):
            raise ConfigError(f"objective must be 'tpp' or 'native', got {self.objective!r}.")
        if not 0 <= self.overlap < self.max_len:
            raise ConfigError(f"overlap must be in [0, max_len={self.max_len}), got {self.overlap}.")


class EasyTPPModel(BaseModel):
    """``base:<model>`` for an easy-tpp model; ``EasyTPPModel("nhp", epochs=5).fit(log, train_q, valid_q)``."""

    vocabulary_bound = True  # one learned embedding per training entity (see lamp.Pipeline.predict)

    Settings = EasyTPPSettings

    def __init__(self, model: str = "nhp", settings: EasyTPPSettings | Mapping[str, Any] | None = None,
                 **overrides: Any) -> None:
        self.settings = make_settings(EasyTPPSettings, settings, {"model": model, **overrides},
                                      where=f"base model {model!r}")
        self.name = self.settings.model
        self.device = resolve_device(self.settings.device)
        self.net: Any = None  # an easy_tpp.model.BaseModel (torch.nn.Module; easy-tpp has no type hints)
        self.num_types = 0
        self.time_scale = 1.0
        self.prior = np.zeros(0, np.float32)
        self.fit_fingerprint: str | None = None
        self.report: TrainReport | None = None
        self._events: EntityEvents | None = None

    # -- construction ---------------------------------------------------------------------------
    def _build_net(self, num_types: int) -> Any:
        models, model_config = import_easytpp()
        s = self.settings
        gpu = (self.device.index or 0) if self.device.type == "cuda" else -1
        cfg = model_config(hidden_size=s.hidden_size, time_emb_size=s.time_emb_size, num_layers=s.num_layers,
                           num_heads=s.num_heads, dropout_rate=s.dropout, use_ln=s.use_ln, thinning=None,
                           num_event_types=num_types, num_event_types_pad=num_types + 1, event_pad_index=num_types,
                           model_id=MODELS[s.model], gpu=gpu, model_specs={}, use_mc_samples=True,
                           loss_integral_num_sample_per_step=s.mc_samples)
        return getattr(models, MODELS[s.model])(cfg).to(self.device)

    def _check_task(self, log: EventLog, queries: QuerySet) -> None:
        if queries.task not in TASKS:
            raise ConfigError(f"base:{self.name} models flat event types and scores tasks {', '.join(TASKS)}; got "
                              f"task={queries.task!r}. Use base:ke_anhp (object) or a heuristic baseline instead.")
        if self.num_types and self.num_types != log.num_relations:
            raise ConfigError(f"base:{self.name} was fitted with {self.num_types} event types but {log.name!r} has "
                              f"{log.num_relations}; score the log it was fitted on (or refit).")

    # -- training -------------------------------------------------------------------------------
    def fit(self, log: EventLog, train: QuerySet, valid: QuerySet) -> dict[str, Any]:
        """Train on the sequences of ``log``'s train split (``train`` only names the task); select the
        epoch by MRR on ``valid`` (filtered, average ties)."""
        self._check_task(log, train)
        self._check_task(log, valid)
        s = self.settings
        gen = seed_everything(s.seed)
        events = EntityEvents.build(log, end=log.split_ends[0])
        self.num_types = log.num_relations
        self.time_scale = mean_group_gap(events)
        counts = np.bincount(log.rels[: log.split_ends[0]], minlength=self.num_types).astype(np.float64)
        self.prior = np.log((counts + 1.0) / (counts.sum() + self.num_types)).astype(np.float32)
        windows = build_windows(events, self.num_types, s.max_len, s.overlap if s.objective == "tpp" else 0,
                                self.time_scale)
        self.net = self._build_net(self.num_types)
        self.fit_fingerprint = log.fingerprint()
        self._events = None
        vq = valid.sample(s.valid_queries, seed=s.seed)
        trainable = np.flatnonzero(windows.lengths >= 2)  # a one-event window has no target and no interval
        order = np.argsort(windows.tgt_win, kind="stable")
        by_win = np.searchsorted(windows.tgt_win[order], np.arange(len(windows) + 1))

        def batches(epoch: int) -> Any:
            # length buckets: sort shuffled chunks of 16 batches by window length, then shuffle the batches,
            # so a batch is cut to a length its windows share (most ICEWS subjects have short sequences)
            perm = trainable[torch.randperm(len(trainable), generator=gen).numpy()]
            chunk = 16 * s.batch_size
            perm = np.concatenate([c[np.argsort(-windows.lengths[c], kind="stable")]
                                   for c in np.split(perm, np.arange(chunk, len(perm), chunk))])
            starts = np.arange(0, len(perm), s.batch_size)
            for a in starts[torch.randperm(len(starts), generator=gen).numpy()]:
                yield self._window_batch(windows, perm[a : a + s.batch_size], order, by_win)

        def evaluate() -> float:
            ranks = np.concatenate([filtered_gold_rank(self.score_batch(log, vq, p), vq, p)
                                    for p in np.array_split(np.arange(len(vq)), max(1, len(vq) // 256))])
            return float(np.mean(1.0 / ranks))

        loss_fn = self._grouped_loss if s.objective == "tpp" else self._native_loss
        cfg = TrainConfig(epochs=s.epochs, lr=s.lr, weight_decay=s.weight_decay, patience=s.patience, seed=s.seed,
                          progress=s.progress)
        self.report = run_training(self.net, batches=batches, loss_fn=loss_fn, evaluate=evaluate, config=cfg,
                                   desc=f"base:{self.name}")
        return {"model": s.model, "windows": len(windows), "targets": int(len(windows.tgt_win)),
                "time_scale": self.time_scale, "valid_queries": len(vq), **self.report.to_dict()}

    def _window_batch(self, w: Windows, rows: np.ndarray, order: np.ndarray, by_win: np.ndarray) -> dict[str, Any]:
        """Tensors of the given windows, cut to the longest of them (the rest is all padding)."""
        sel = np.concatenate([order[by_win[r] : by_win[r + 1]] for r in rows])
        remap = np.empty(len(w), dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        lengths = w.lengths[rows]
        cut = max(2, int(lengths.max()))  # easy-tpp's NHP needs two positions even when the second is padding

        def tens(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[rows, :cut])).to(self.device)

        return {"times": tens(w.times), "dts": tens(w.dts), "types": tens(w.types), "gap": tens(w.gap),
                "mask": torch.from_numpy(np.arange(cut)[None, :] < lengths[:, None]).to(self.device),
                "tgt": [torch.from_numpy(a).to(self.device)
                        for a in (remap[w.tgt_win[sel]], w.tgt_pos[sel], w.tgt_type[sel])]}

    def _grouped_loss(self, b: dict[str, Any]) -> torch.Tensor:
        assert self.net is not None
        S = self.settings.mc_samples
        frac = torch.cat([(torch.arange(S, device=self.device) + 0.5) / S, torch.ones(1, device=self.device)])
        sample = b["gap"][..., None] * frac  # [B, L, S+1]: S midpoints of each gap, then its end
        if MODELS[self.settings.model] in ABSOLUTE_SAMPLE_TIMES:
            sample = sample + b["times"][..., None]
        lam = self.net.compute_intensities_at_sample_times(b["times"], b["dts"], b["types"], sample)
        win, pos, typ = b["tgt"]
        event_ll = torch.log(lam[win, pos, S, typ] + EPS).sum()
        integral = (b["gap"] * lam[:, :, :S, :].sum(-1).mean(-1)).sum()
        return -(event_ll - integral) / max(len(typ), 1)

    def _native_loss(self, b: dict[str, Any]) -> torch.Tensor:
        assert self.net is not None
        mask = b["mask"]
        length = mask.shape[1]
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool, device=self.device), diagonal=1)
        attn = causal[None, :, :] | ~mask[:, None, :]
        loss, n_events = self.net.loglike_loss(time_seqs=b["times"], time_delta_seqs=b["dts"], type_seqs=b["types"],
                                               seq_non_pad_mask=mask, attention_mask=attn)
        return loss / max(int(n_events), 1)

    # -- scoring --------------------------------------------------------------------------------
    def _events_for(self, log: EventLog) -> EntityEvents:
        if self._events is None or self._events.fingerprint != log.fingerprint() or self._events.n_rows != len(log):
            self._events = EntityEvents.build(log)
        return self._events

    def log_intensities(self, log: EventLog, subjects: np.ndarray, history_end: np.ndarray,
                        times: np.ndarray) -> np.ndarray:
        """``log lambda_k(t)`` [B, num_types] from each subject's events with row < history_end."""
        if self.net is None:
            raise ConfigError(f"base:{self.name} is not fitted; call fit() or load() first.")
        pre = query_prefixes(self._events_for(log), subjects, history_end, times, self.settings.max_len,
                             self.num_types, self.time_scale)
        dev = self.device
        t = torch.from_numpy(pre.times).to(dev)
        B = len(pre.last)
        last = torch.from_numpy(np.maximum(pre.last, 0)).to(dev)
        rows = torch.arange(B, device=dev)
        sample = torch.zeros_like(t)
        if MODELS[self.settings.model] in ABSOLUTE_SAMPLE_TIMES:
            sample = t.clone()
            sample[rows, last] = torch.from_numpy(pre.offset).to(dev)
        else:
            sample[rows, last] = torch.from_numpy(pre.gap).to(dev)
        self.net.eval()
        with torch.no_grad():
            lam = self.net.compute_intensities_at_sample_times(t, torch.from_numpy(pre.dts).to(dev),
                                                              torch.from_numpy(pre.types).to(dev), sample[..., None])
            out = torch.log(lam[rows, last, 0, :] + EPS).float().cpu().numpy()
        return np.where((pre.last >= 0)[:, None], out, self.prior[None, :]).astype(np.float32)

    def score_batch(self, log: EventLog, queries: QuerySet, positions: np.ndarray) -> np.ndarray:
        self._check_task(log, queries)
        f = queries.frame
        pos = np.asarray(positions, dtype=np.int64)
        scores = self.log_intensities(log, f["subject"].to_numpy()[pos], f["history_end"].to_numpy()[pos],
                                      f["time"].to_numpy()[pos])
        if queries.task == "predicate":
            from lamp.tpp.task_history import relation_roots

            return root_logsumexp(scores, relation_roots(log), queries.num_candidates).astype(np.float32)
        return scores

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Weights (safetensors) and settings (JSON) through :mod:`lamp.tpp.checkpoint`."""
        from lamp.tpp.checkpoint import save_checkpoint

        if self.net is None:
            raise ConfigError(f"base:{self.name} is not fitted; nothing to save. Call fit() first.")
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        tensors["prior"] = torch.from_numpy(self.prior)
        config = {"settings": asdict(self.settings), "num_types": self.num_types, "time_scale": self.time_scale}
        save_checkpoint(path, kind=self.settings.model, tensors=tensors, config=config,
                        fingerprint=self.fit_fingerprint)

    @classmethod
    def load(cls, path: Path, log: EventLog | None = None, *, device: str = "auto") -> EasyTPPModel:
        """Strict load: the same model kind, exactly the saved tensors, and ``log``'s fingerprint if given."""
        from lamp.tpp.checkpoint import load_checkpoint, read_checkpoint_meta

        cfg = read_checkpoint_meta(path).get("config", {})
        try:
            settings = dict(cfg["settings"])
            settings["device"] = device
            model = cls(**settings)
            model.num_types, model.time_scale = int(cfg["num_types"]), float(cfg["time_scale"])
        except (KeyError, TypeError, ConfigError) as exc:
            raise ArtifactError(f"{path}: the checkpoint config is not an easy-tpp model config ({exc}). "
                                "Point to a folder written by EasyTPPModel.save, or refit.") from exc
        net = model._build_net(model.num_types)
        expected = {f"net.{k}" for k in net.state_dict()} | {"prior"}
        ckpt = load_checkpoint(path, kind=model.settings.model, expected_tensors=expected,
                               fingerprint=None if log is None else log.fingerprint(), framework="pt")
        try:
            net.load_state_dict({k[4:]: v for k, v in ckpt.tensors.items() if k.startswith("net.")}, strict=True)
        except RuntimeError as exc:  # shapes that do not match the saved settings
            raise ArtifactError(f"{path}: the saved weights do not fit the saved settings ({exc}). Refit and save.") from exc
        model.net, model.prior = net.eval(), ckpt.tensors["prior"].numpy()
        model.fit_fingerprint = ckpt.data_fingerprint
        return model
