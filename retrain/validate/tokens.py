"""Exact token counts offline, per-model example limits and the training cost estimate.

``tiktoken.get_encoding`` downloads its vocabularies at run time, which fails without internet.
The ``bpe-openai`` package ships the same ``cl100k_base`` and ``o200k_base`` rank files
(gzipped); they are loaded here into a ``tiktoken.Encoding`` with the split pattern and special
tokens tiktoken itself uses (``tiktoken_ext/openai_public.py``), and checked against
tiktoken's published SHA-256 of each file, so the token ids are tiktoken's.

Chat examples are counted the way OpenAI's fine-tuning cookbook counts them
(``examples/Chat_finetuning_data_prep.ipynb``): 3 tokens per message, the tokens of every
string field (role, content, name +1), and 3 tokens priming the reply. Tool calls and tool
definitions are counted as the tokens of their JSON; the service's exact tool rendering is not
public, so those counts are close, not exact.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
import math
from binascii import a2b_base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
import tiktoken

from retrain.exceptions import ConfigError

if TYPE_CHECKING:  # worker processes import this module: keep pydantic-settings out of them
    from retrain.config.stage_settings import ValidationSettings

__all__ = [
    "PER_MESSAGE",
    "PER_NAME",
    "REPLY_PRIMING",
    "CostEstimate",
    "auto_epochs",
    "base_model_id",
    "count_example",
    "count_messages",
    "count_role",
    "count_text",
    "encoding_for_model",
    "encoding_name_for_model",
    "estimate_cost",
    "example_token_limit",
    "get_encoding",
    "lookup_by_family",
]

logger = logging.getLogger(__name__)

EncodingName = Literal["cl100k_base", "o200k_base"]

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14); tests compare them with tiktoken's.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


@dataclass(frozen=True)
class _EncodingSpec:
    pat_str: str
    special_tokens: dict[str, int]
    sha256: str


_SPECS: dict[str, _EncodingSpec] = {
    "cl100k_base": _EncodingSpec(
        pat_str=_CL100K_PAT,
        special_tokens={
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": _EncodingSpec(
        pat_str=_O200K_PAT,
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# Model family prefix -> encoding (longest prefix wins). gpt-4o and later use o200k_base.
_MODEL_ENCODINGS: dict[str, EncodingName] = {
    "gpt-4o": "o200k_base",
    "gpt-4.1": "o200k_base",
    "gpt-4.5": "o200k_base",
    "gpt-5": "o200k_base",
    "o1": "o200k_base",
    "o3": "o200k_base",
    "o4": "o200k_base",
    "gpt-4": "cl100k_base",
    "gpt-3.5-turbo": "cl100k_base",
}

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3

# OpenAI's default-epoch rule for n_epochs="auto" (see auto_epochs).
_TARGET_EPOCHS = 3
_MIN_TARGET_EXAMPLES = 100
_MAX_TARGET_EXAMPLES = 25_000
_MIN_DEFAULT_EPOCHS = 1
_MAX_DEFAULT_EPOCHS = 25


def _bundled_vocabulary(name: str) -> Path:
    """The rank file inside the installed ``bpe-openai`` package, found without importing it.

    Importing ``bpe_openai`` builds its own tokenizers (about 0.4 s); only its data file is needed.
    """
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("bpe_openai")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"


@lru_cache(maxsize=2)
def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name`` built from the rank file bundled with ``bpe-openai``."""
    spec = _SPECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown encoding {name!r}: use one of {', '.join(sorted(_SPECS))}")
    try:
        packed = _bundled_vocabulary(name).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ConfigError(
            f"the {name} vocabulary is missing from the bpe-openai package: reinstall it (`make setup`)"
        ) from exc
    contents = gzip.decompress(packed)
    if hashlib.sha256(contents).hexdigest() != spec.sha256:
        raise ConfigError(
            f"the bundled {name} vocabulary does not match tiktoken's hash: reinstall bpe-openai"
        )
    ranks = {a2b_base64(token): int(rank) for token, rank in (line.split() for line in contents.splitlines())}
    logger.debug("loaded %s with %d ranks", name, len(ranks))
    return tiktoken.Encoding(
        name=name, pat_str=spec.pat_str, mergeable_ranks=ranks, special_tokens=spec.special_tokens
    )


def base_model_id(model: str) -> str:
    """The base model of a model id: ``ft:gpt-4o-mini-2024-07-18:org::abc`` -> ``gpt-4o-mini-2024-07-18``."""
    if model.startswith("ft:"):
        return model[3:].split(":", 1)[0]
    return model


def lookup_by_family(table: Mapping[str, Any], model: str, what: str) -> Any:
    """The value for the longest family prefix of ``model`` in ``table``; ConfigError if none matches."""
    base = base_model_id(model)
    matches = [prefix for prefix in table if base == prefix or base.startswith(prefix + "-")]
    if not matches:
        raise ConfigError(
            f"no {what} for model {model!r}: add its family to the table (known: {', '.join(sorted(table))})"
        )
    return table[max(matches, key=len)]


def encoding_name_for_model(model: str) -> EncodingName:
    name: EncodingName = lookup_by_family(_MODEL_ENCODINGS, model, "tokenizer")
    return name


def encoding_for_model(model: str) -> tiktoken.Encoding:
    return get_encoding(encoding_name_for_model(model))


def example_token_limit(model: str, settings: ValidationSettings) -> int:
    """The per-example token limit of ``model`` (RETRAIN_VALIDATION__EXAMPLE_TOKEN_LIMITS)."""
    limit: int = lookup_by_family(settings.example_token_limits, model, "example token limit")
    return limit


def count_text(text: str, encoding: tiktoken.Encoding) -> int:
    """Tokens in ``text``; special-token strings count as ordinary text, as in training data."""
    return len(encoding.encode_ordinary(text))


_ROLE_NAMES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_role_counts: dict[tuple[str, str], int] = {}


def count_role(role: str, encoding: tiktoken.Encoding) -> int:
    """``count_text(role, encoding)``, remembered for the six role names (they repeat in every message)."""
    key = (encoding.name, role)
    count = _role_counts.get(key)
    if count is None:
        count = count_text(role, encoding)
        if role in _ROLE_NAMES:
            _role_counts[key] = count
    return count


def _content_tokens(content: Any, encoding: tiktoken.Encoding) -> int:
    if isinstance(content, str):
        return count_text(content, encoding)
    if isinstance(content, list):
        return sum(count_text(part.get("text", ""), encoding) for part in content if isinstance(part, dict))
    return 0


def count_messages(messages: Iterable[Mapping[str, Any]], encoding: tiktoken.Encoding) -> int:
    """Tokens of a conversation, counted as the fine-tuning cookbook does (see module docstring)."""
    total = REPLY_PRIMING
    for message in messages:
        total += PER_MESSAGE
        for key, value in message.items():
            if key == "role" and isinstance(value, str):
                total += count_role(value, encoding)
            elif key == "tool_call_id" and isinstance(value, str):
                total += count_text(value, encoding)
            elif key == "content":
                total += _content_tokens(value, encoding)
            elif key == "name" and isinstance(value, str):
                total += count_text(value, encoding) + PER_NAME
            elif key in ("tool_calls", "function_call") and value:
                total += count_text(orjson.dumps(value).decode(), encoding)
    return total


def count_example(example: Mapping[str, Any], encoding: tiktoken.Encoding) -> int:
    """Tokens of one training example, chat or preference.

    A preference example counts its input plus both outputs (the longest thing the service
    could have to fit), so the limit check errs on the safe side.
    """
    if "input" in example:
        inputs = example.get("input") or {}
        total = count_messages(inputs.get("messages", []), encoding)
        for key in ("preferred_output", "non_preferred_output"):
            total += count_messages(example.get(key, []), encoding) - REPLY_PRIMING
        definitions = inputs
    else:
        total = count_messages(example.get("messages", []), encoding)
        definitions = example
    for key in ("tools", "functions"):
        if definitions.get(key):
            total += count_text(orjson.dumps(definitions[key]).decode(), encoding)
    return total


def auto_epochs(n_examples: int) -> int:
    """The epochs the service picks for ``n_epochs="auto"``.

    OpenAI's documented default (fine-tuning cookbook, ``Chat_finetuning_data_prep.ipynb``,
    "Cost estimation"): start from 3 epochs; if ``n_examples * 3 < 100`` use
    ``min(25, 100 // n_examples)``; if ``n_examples * 3 > 25000`` use ``max(1, 25000 // n_examples)``.
    """
    if n_examples <= 0:
        return 0
    if n_examples * _TARGET_EPOCHS < _MIN_TARGET_EXAMPLES:
        return min(_MAX_DEFAULT_EPOCHS, _MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * _TARGET_EPOCHS > _MAX_TARGET_EXAMPLES:
        return max(_MIN_DEFAULT_EPOCHS, _MAX_TARGET_EXAMPLES // n_examples)
    return _TARGET_EPOCHS


@dataclass(frozen=True)
class CostEstimate:
    n_examples: int
    epochs: int
    billable_tokens_per_epoch: int
    billable_tokens: int
    usd_per_million: float | None
    usd: float | None


def estimate_cost(
    token_counts: Iterable[int],
    model: str,
    settings: ValidationSettings,
    *,
    n_epochs: int | Literal["auto"] = "auto",
) -> CostEstimate:
    """Billable tokens = epochs x sum(min(tokens, limit)); priced from the settings table.

    ``usd`` is None when the model has no price in RETRAIN_VALIDATION__TRAINING_USD_PER_MILLION_TOKENS.
    """
    limit = example_token_limit(model, settings)
    n_examples = 0
    per_epoch = 0
    for count in token_counts:
        n_examples += 1
        per_epoch += min(count, limit)
    epochs = auto_epochs(n_examples) if n_epochs == "auto" else n_epochs
    billable = epochs * per_epoch
    try:
        price: float | None = lookup_by_family(settings.training_usd_per_million_tokens, model, "price")
    except ConfigError:
        price = None
    usd = None if price is None else math.fsum([billable * price / 1_000_000])
    return CostEstimate(n_examples, epochs, per_epoch, billable, price, usd)
