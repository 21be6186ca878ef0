"""The transformers backend on a tiny random GPT-2 with a word-level tokenizer, built offline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lamp.llm import LLMRequest, build_backend

pytestmark = pytest.mark.slow
WORDS = "the capital of france is paris user assistant system : hello world name a city"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([WORDS], trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "<s>", "</s>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(path)
    cfg = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=16, n_layer=1,
                                  n_head=2, bos_token_id=2, eos_token_id=3, pad_token_id=1)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


def test_generate_count_and_loglikelihood(tiny_model: Path) -> None:
    b = build_backend("transformers", model_path=str(tiny_model))
    assert b.name == "transformers" and "@sha256:" in b.model_id and b.context_length == 64
    assert b.count_tokens("the capital of france") == 4
    (resp,) = b.generate([LLMRequest(messages=(("user", "name a city"),), max_tokens=5, stop=("zzz",))])
    assert resp.ok and resp.prompt_tokens > 0 and resp.completion_tokens == 5
    again = b.generate([LLMRequest(messages=(("user", "name a city"),), max_tokens=5)])[0]
    assert again.text == resp.text  # greedy decoding is deterministic
    ll = b.loglikelihood("the capital of france is", " paris")
    assert math.isfinite(ll) and ll < 0
    too_long = b.generate([LLMRequest(messages=(("user", "hello " * 70),), max_tokens=5)])[0]
    assert too_long.error is not None and "context length" in too_long.error
