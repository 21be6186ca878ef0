"""Jump-forward JSON decoding (lamp.llm.json_decoding) against a character-level fake model.

The fake's logits are a fixed function of the context, so the decoder's choices can be checked by
hand: where the schema leaves a choice the highest-scoring allowed token wins, and everything the
schema forces costs no forward pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from lamp.abduce.schema import CauseConstraints, batched_schema, causes_schema
from lamp.llm.json_decoding import (
    MAX_FREE_STRING_TOKENS,
    SEPARATORS,
    JumpForwardDecoder,
    TokenModel,
    free_string_tokens,
    supported,
)

ALPHABET = [chr(c) for c in range(32, 127)]


class CharModel(TokenModel):
    """One token per printable ASCII character; ``prefer`` maps a character to a logit bonus."""

    def __init__(self, prefer: dict[str, float] | None = None) -> None:
        self.context: list[int] = []
        self.evaluated = 0
        self.prefer = prefer or {}

    def tokenize(self, text: str) -> list[int]:
        return [ALPHABET.index(c) for c in text]

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        self.context.extend(tokens)
        self.evaluated += len(tokens)
        out = np.zeros(len(ALPHABET))
        for ch, bonus in self.prefer.items():
            out[ALPHABET.index(ch)] = bonus
        return out

    def token_texts(self) -> list[bytes]:
        return [c.encode() for c in ALPHABET]

    def text(self) -> str:
        return "".join(ALPHABET[t] for t in self.context)


def decode(schema: dict, model: CharModel, **kw: object) -> tuple[str, JumpForwardDecoder, bool]:
    dec = JumpForwardDecoder(model, free_tokens=lambda: free_string_tokens(model.token_texts(), set()), **kw)
    text, generated, complete = dec.run(schema)
    assert len(model.context) == model.evaluated <= generated  # no token reached the model twice
    if complete:
        # The model saw the answer up to its last choice; that choice's token (one character here) and
        # the trailing literal (closing quotes and brackets) are never evaluated: nothing reads them.
        assert text.startswith(model.text()) and set(text[len(model.text()) + 1:]) <= set('"]}')
    else:  # cut where max_tokens ran out: the pieces written agree with what the model saw
        assert text.startswith(model.text()) or model.text().startswith(text)
    return text, dec, complete


CONS = CauseConstraints(relations=("Consult", "Criticize or denounce", "Make statement"),
                        entities=("China", "Chile", "Japan"), dates=("2014-01-02", "2014-01-05"))


def test_abduction_schemas_decode_to_valid_json_in_the_demonstration_layout() -> None:
    for schema in (causes_schema(2, CONS), batched_schema(3, 2, CONS), causes_schema(3, None),
                   batched_schema(2, 1, CONS, with_headline=True)):
        assert supported(schema)
        text, dec, complete = decode(schema, CharModel())
        data = json.loads(text)
        assert complete and json.dumps(data, ensure_ascii=False, separators=SEPARATORS) == text  # compact
        answers = list(data.values()) if "causes" not in data else [data["causes"]]
        for answer in answers:
            assert 1 <= len(answer) <= 3
            for cause in answer:
                if schema is not causes_schema(3, None):
                    assert set(cause) >= {"subject", "relation", "object", "date"}


def test_choices_follow_the_model_and_forced_tokens_cost_no_forward_pass() -> None:
    # 'J' beats 'C' for the entities; among the relations only the first letter branches ('C' for both
    # Consult and Criticize, then 'o' vs 'r'); ',' vs ']' after each item.
    model = CharModel({"J": 2.0, "r": 1.0, "]": 3.0, "2": 0.5, "5": 1.0})
    text, dec, _ = decode(causes_schema(3, CONS), model)
    cause = json.loads(text)["causes"]
    assert cause == [{"subject": "Japan", "relation": "Criticize or denounce", "object": "Japan",
                      "date": "2014-01-05"}]
    # subject (C/J), relation (C/M, then o/r), object (C/J), date (2/5), end of array (,/]): 6 choices,
    # plus 'Chile' vs 'China' never asked because 'J' won.
    assert dec.forward_passes == 6 < len(model.context) / 10


def test_array_bounds_and_minimum_items() -> None:
    schema = {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2, "maxItems": 4}
    text, _, _ = decode(schema, CharModel({"]": 5.0}))
    assert json.loads(text) == ["a", "a"]  # ']' preferred, but not before minItems
    text, _, _ = decode(schema, CharModel({",": 5.0, "b": 1.0}))
    assert json.loads(text) == ["b", "b", "b", "b"]  # never more than maxItems


def test_free_strings_stay_inside_the_quotes() -> None:
    schema = {"type": "object", "properties": {"headline": {"type": "string"}}, "required": ["headline"],
              "additionalProperties": False}
    text, _, _ = decode(schema, CharModel({"\\": 9.0, "x": 1.0}))  # the backslash may never be chosen
    value = json.loads(text)["headline"]
    assert value == "x" * MAX_FREE_STRING_TOKENS
    text, _, _ = decode(schema, CharModel({'"': 9.0}))
    assert json.loads(text) == {"headline": ""}


def test_max_tokens_cuts_the_answer_and_says_so() -> None:
    text, dec, complete = decode(causes_schema(2, CONS), CharModel(), max_tokens=30)
    assert not complete and dec.generated <= 30 and len(text) <= 30
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_sampling_is_seeded() -> None:
    schema = batched_schema(3, 2, CONS)
    runs = [decode(schema, CharModel(), temperature=1.0, seed=s)[0] for s in (1, 1, 2, 3, 4)]
    assert runs[0] == runs[1] and len(set(runs)) > 1


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},  # extra properties allowed
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False},
    {"type": "array", "items": {"type": "string"}, "minItems": 0, "maxItems": 3},
    {"type": "array", "items": {"type": "string"}, "minItems": 1},
    {"type": "integer"},
    {"type": "string", "pattern": "^a+$"},
    {"enum": ["a", "a"]},
    {"enum": [1, 2]},
])
def test_schemas_outside_the_subset_are_refused(schema: dict) -> None:
    assert not supported(schema)  # LocalBackend sends these to llama.cpp's grammar instead
