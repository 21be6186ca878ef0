"""Hugging Face transformers backend: any causal LM saved in a local folder, loaded offline."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamp.errors import ConfigError, LLMError, MissingDependencyError
from lamp.llm.models import file_sha256
from lamp.llm.types import LLMRequest, LLMResponse, failed_response

logger = logging.getLogger(__name__)

_IDENTITY_FILES = ("*.safetensors", "*.bin", "config.json", "generation_config.json", "tokenizer.json",
                   "tokenizer_config.json", "*.model", "vocab.*", "merges.txt")


def _folder_digest(path: Path) -> str:
    h = hashlib.sha256()
    for pattern in _IDENTITY_FILES:
        for f in sorted(path.glob(pattern)):
            h.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return h.hexdigest()


class TransformersBackend:
    """A local HF causal LM (a folder written by ``save_pretrained``), never fetched from a hub.

    Prompts use the tokenizer's chat template when it has one, else "role: content" lines.
    ``json_schema`` is not enforced (a warning says so); stop strings cut the text after decoding.
    """

    name = "transformers"
    max_concurrency = 1

    def __init__(self, model_path: str | Path, *, device: str = "cpu", context_length: int | None = None,
                 torch_dtype: str = "auto") -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise MissingDependencyError("transformers", purpose="the transformers LLM backend") from exc
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"No Hugging Face model folder at {path} (config.json missing). "
                              "Fix: set llm.model_path to a folder written by save_pretrained().")
        self._torch = torch
        self.model_path = path
        self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
        self.model: Any = model.to(device).eval()
        self.device = device
        self.model_id = f"{path.name}@sha256:{_folder_digest(path)[:16]}+transformers-{transformers.__version__}"
        cfg_len = getattr(self.model.config, "max_position_embeddings", None)
        self._context_length = int(context_length or cfg_len or self.tokenizer.model_max_length)
        self._lock = threading.RLock()
        self._warned_schema = False

    def __repr__(self) -> str:
        return f"TransformersBackend(model_id={self.model_id!r}, device={self.device!r})"

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, req: LLMRequest) -> Any:
        if getattr(self.tokenizer, "chat_template", None):
            enc = self.tokenizer.apply_chat_template(req.message_dicts(), add_generation_prompt=True,
                                                     tokenize=True, return_dict=True, return_tensors="pt")
            return enc["input_ids"]
        text = "\n".join(f"{r}: {c}" for r, c in req.messages) + "\nassistant:"
        return self.tokenizer(text, return_tensors="pt")["input_ids"]

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        return [self._one(r) for r in requests]

    def _one(self, req: LLMRequest) -> LLMResponse:
        torch = self._torch
        if req.json_schema is not None and not self._warned_schema:
            self._warned_schema = True
            logger.warning("The transformers backend does not enforce json_schema; answers are free text")
        t0 = time.perf_counter()
        ids = self._prompt_ids(req).to(self.device)
        n_prompt = int(ids.shape[1])
        if n_prompt + req.max_tokens > self.context_length:
            return failed_response(f"prompt ({n_prompt} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                                   f"context length {self.context_length}")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": req.max_tokens, "pad_token_id": pad,
                                  "attention_mask": torch.ones_like(ids)}
        if req.temperature > 0:
            kwargs.update(do_sample=True, temperature=req.temperature)
        else:
            kwargs.update(do_sample=False)
        with self._lock, torch.no_grad():
            torch.manual_seed(req.effective_seed())
            out = self.model.generate(ids, **kwargs)
        new = out[0, n_prompt:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        for s in req.stop:
            if s and s in text:
                text = text[: text.index(s)]
        return LLMResponse(text, n_prompt, int(new.shape[0]), cached=False, latency_s=time.perf_counter() - t0)

    def loglikelihood(self, context: str, continuation: str) -> float:
        """Sum of log p(continuation tokens | context) on raw text (no chat template)."""
        torch = self._torch
        ctx = list(self.tokenizer(context, add_special_tokens=True)["input_ids"])
        cont = list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])
        if not ctx and self.tokenizer.bos_token_id is not None:
            ctx = [self.tokenizer.bos_token_id]
        if not ctx or not cont:
            raise LLMError(f"loglikelihood needs a non-empty context and continuation "
                           f"(got {len(ctx)} and {len(cont)} tokens)")
        ids = torch.tensor([ctx + cont], device=self.device)
        with self._lock, torch.no_grad():
            logits = self.model(ids).logits[0, len(ctx) - 1: len(ctx) + len(cont) - 1].float()
        logp = torch.log_softmax(logits, dim=-1)
        return float(logp[torch.arange(len(cont)), torch.tensor(cont, device=self.device)].sum())
