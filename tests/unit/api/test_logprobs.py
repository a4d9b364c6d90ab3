"""Token logprobs in OpenAI's chat and completions shapes (hand-checked values)."""

from __future__ import annotations

from service.api.openai.logprobs import chat_logprobs, completion_logprobs
from service.engine.types import TokenLogprob, TopToken

TOKENS = [
    TokenLogprob(token_id=5, token="Hé", logprob=-0.1,
                 top=[TopToken(token_id=5, token="Hé", logprob=-0.1), TopToken(token_id=9, token="Hi", logprob=-2.5)]),
    TokenLogprob(token_id=7, token="!", logprob=-0.7,
                 top=[TopToken(token_id=8, token=".", logprob=-0.6), TopToken(token_id=7, token="!", logprob=-0.7)]),
]


def test_chat_shape_with_bytes_and_top_alternatives() -> None:
    shaped = chat_logprobs(TOKENS, 1).model_dump()
    assert shaped == {"content": [
        {"token": "Hé", "logprob": -0.1, "bytes": [72, 195, 169],
         "top_logprobs": [{"token": "Hé", "logprob": -0.1, "bytes": [72, 195, 169]}]},
        {"token": "!", "logprob": -0.7, "bytes": [33], "top_logprobs": [{"token": ".", "logprob": -0.6, "bytes": [46]}]},
    ]}
    assert chat_logprobs(TOKENS, None) is None and chat_logprobs(None, 2) is None


def test_completion_shape_offsets_follow_the_text() -> None:
    shaped = completion_logprobs(TOKENS, 2, text_offset=10).model_dump()
    assert shaped["tokens"] == ["Hé", "!"]
    assert shaped["token_logprobs"] == [-0.1, -0.7]
    assert shaped["text_offset"] == [10, 12]
    assert shaped["top_logprobs"] == [{"Hé": -0.1, "Hi": -2.5}, {".": -0.6, "!": -0.7}]
