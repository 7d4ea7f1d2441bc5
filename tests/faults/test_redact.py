"""retrain.config.redact: given secrets and anything shaped like a credential become ***."""

from __future__ import annotations

import pytest

from retrain.config.redact import MASK, redact

KEY = "sk-test-LEAKCHECK-0123456789abcdef"


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {KEY}.",
        "key sk-proj-AbC_dEf-123456789 in a message",
        "aws AKIAIOSFODNN7EXAMPLE was used",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_-part==",
        "GET https://x.openai.azure.com/openai/deployments/d?api-version=1&api-key=abcdef0123456789&x=1",
        '{"api_key": "plain-looking-secret-value", "model": "gpt-4o-mini"}',
        "api-key: 0123456789abcdef0123456789abcdef",
    ],
)
def test_credential_shapes_are_masked(text: str) -> None:
    masked = redact(text)
    assert MASK in masked
    for secret in (
        KEY,
        "sk-proj-AbC",
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGci",
        "abcdef0123456789",
        "plain-looking",
    ):
        assert secret not in masked


def test_given_secrets_are_masked_even_when_they_look_like_nothing() -> None:
    secret = "correct-horse-battery-staple"
    assert redact(f"provider said: {secret}!", secret) == f"provider said: {MASK}!"
    assert redact(f"{secret}{secret}", secret) == MASK * 2


def test_the_longest_secret_wins_when_one_contains_another() -> None:
    assert redact("token abcdefgh-ijklmnop", "abcdefgh", "abcdefgh-ijklmnop") == f"token {MASK}"


def test_tiny_placeholders_are_not_masked_literally_and_ordinary_text_is_left_alone() -> None:
    text = "job ftjob-abc failed at step 3 (server_error): x marks the spot; see api docs"
    assert redact(text, "x", "") == text
    assert redact("model ft:gpt-4o-mini:org:retrain-20261101:abcd1234") == (
        "model ft:gpt-4o-mini:org:retrain-20261101:abcd1234"
    )


def test_the_surrounding_text_and_field_names_survive() -> None:
    assert redact("api_key=abcd1234efgh&model=m") == f"api_key={MASK}&model=m"
    assert redact(f"before {KEY} after") == f"before {MASK} after"
