"""Raw text for text pairs: tokenized with the pair's ``tokenizer.json`` (sent by the server in
ListModels), the SIS shown as the text with the sufficient words highlighted.

Needs the ``tokenizers`` library (``pip install 'sisguard[text]'``), imported on first use.

>>> tokens = tokenize(info, "a good movie")  # doctest: +SKIP
>>> print(highlight(tokens, explanation.dense.sis[0].mask))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._errors import InvalidInput
from ._results import PairInfo

__all__ = ["TextExplanation", "Tokens", "highlight", "text_inputs", "tokenize", "word_groups"]

#: ANSI: bold black on yellow for a sufficient token, then reset
_ON, _OFF = "\x1b[1;30;43m", "\x1b[0m"


@dataclass(frozen=True)
class Tokens:
    """A text as the pair's model sees it."""

    text: str
    ids: NDArray[np.int64]
    tokens: tuple[str, ...]
    #: the word each token belongs to (None for special tokens)
    word_ids: tuple[int | None, ...]
    #: character span of each token in ``text``
    offsets: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "ids": self.ids.tolist(), "tokens": list(self.tokens)}


def tokenize(info: PairInfo, text: str) -> Tokens:
    """``text`` tokenized with the pair's tokenizer; InvalidInput when the pair has none."""
    if info.text is None or not info.text.tokenizer_json:
        raise InvalidInput(
            f"pair {info.name} has no tokenizer configured (text.tokenizer_file); send token ids instead"
        )
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise InvalidInput("raw text needs the tokenizers library: pip install 'sisguard[text]'") from exc
    try:
        tok = Tokenizer.from_str(info.text.tokenizer_json)
        enc = tok.encode(text)
    except Exception as exc:  # the library raises plain Exceptions for bad JSON
        raise InvalidInput(f"pair {info.name}'s tokenizer cannot be used: {exc}") from exc
    if not enc.ids:
        raise InvalidInput("the text holds no token")
    return Tokens(
        text=text,
        ids=np.asarray(enc.ids, dtype=np.int64),
        tokens=tuple(enc.tokens),
        word_ids=tuple(enc.word_ids),
        offsets=tuple((int(a), int(b)) for a, b in enc.offsets),
    )


def word_groups(tokens: Tokens) -> NDArray[np.int32]:
    """A group map with one feature per word (its sub-word tokens together); a special token is
    its own feature. Features are numbered in order of appearance."""
    groups = np.empty(len(tokens.ids), dtype=np.int32)
    seen: dict[object, int] = {}
    for i, w in enumerate(tokens.word_ids):
        key: object = ("token", i) if w is None else w
        groups[i] = seen.setdefault(key, len(seen))
    return groups


def highlight(tokens: Tokens, mask: NDArray[np.bool_], *, colour: bool = True) -> str:
    """The text with the tokens where ``mask`` is true highlighted (ANSI colours, or ``[brackets]``
    when ``colour`` is false); characters between tokens are kept as written."""
    m = np.asarray(mask, dtype=bool).ravel()
    if m.size != len(tokens.ids):
        raise InvalidInput(f"mask has {m.size} elements, the text has {len(tokens.ids)} tokens")
    on, off = (_ON, _OFF) if colour else ("[", "]")
    out: list[str] = []
    pos = 0
    i = 0
    n = len(tokens.ids)
    while i < n:
        a, b = tokens.offsets[i]
        j = i
        # one run of consecutive highlighted (or plain) tokens that touch each other
        while j + 1 < n and m[j + 1] == m[i] and tokens.offsets[j + 1][0] == tokens.offsets[j][1]:
            j += 1
            b = tokens.offsets[j][1]
        if a == b:  # a special token without characters
            out.append((on + tokens.tokens[i] + off) if m[i] else "")
            i += 1
            continue
        out.append(tokens.text[pos:a])
        piece = tokens.text[a:b]
        out.append(on + piece + off if m[i] else piece)
        pos = b
        i = j + 1
    out.append(tokens.text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class TextExplanation:
    """:meth:`Client.explain_text`'s answer: the tokens and the explanation of their ids."""

    tokens: Tokens
    explanation: Any  # Explanation (kept untyped here: _results imports nothing of this module)

    def highlighted(self, variant: str = "dense", *, colour: bool = True, index: int = 0) -> str:
        """The text with the ``index``-th SIS of ``variant`` highlighted ('' when it has none)."""
        v = self.explanation.variants.get(variant)
        if v is None or len(v.sis) <= index:
            return ""
        return highlight(self.tokens, v.sis[index].mask, colour=colour)

    def sis_tokens(self, variant: str = "dense", index: int = 0) -> list[str]:
        v = self.explanation.variants.get(variant)
        if v is None or len(v.sis) <= index:
            return []
        mask = np.asarray(v.sis[index].mask, dtype=bool).ravel()
        return [t for t, m in zip(self.tokens.tokens, mask, strict=True) if m]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.explanation.to_dict()
        doc["tokens"] = list(self.tokens.tokens)
        doc["text"] = self.tokens.text
        for name, v in self.explanation.variants.items():
            doc[name]["sis_tokens"] = [self.sis_tokens(name, i) for i in range(len(v.sis))]
        return doc


def text_inputs(info: PairInfo, tokens: Tokens, *, batch: bool) -> dict[str, NDArray[Any]]:
    """The named tensors of one tokenized text: the ids, and for passed-through inputs an attention
    mask of ones and token type ids of zeros (derived inputs are left to the server)."""
    ids = tokens.ids[None] if batch else tokens.ids
    feature = next((i.name for i in info.inputs if i.role == "features"), info.input_name)
    out: dict[str, NDArray[Any]] = {feature: ids}
    for spec in info.inputs:
        if spec.role != "passthrough":
            continue
        if spec.name == "attention_mask":
            out[spec.name] = np.ones_like(ids, dtype=spec.dtype)
        elif spec.name == "token_type_ids":
            out[spec.name] = np.zeros_like(ids, dtype=spec.dtype)
        else:
            raise InvalidInput(
                f"pair {info.name}'s input {spec.name} is passed through: send it with explain()/predict() "
                "and the token ids"
            )
    return out
