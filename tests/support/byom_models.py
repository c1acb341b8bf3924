"""Bring-your-own-model fixtures: a small transformer text classifier, a tabular MLP and a
scikit-learn model, each trained briefly so that their decisions are real, exported to ONNX.

Training costs tens of seconds, so the files are cached in a folder keyed by this module's source
(any change to a builder rebuilds them).
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# -- the synthetic text task -----------------------------------------------------------------

VOCAB = 64
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
GOOD, BAD = 5, 6  # positive iff "good" occurs more often than "bad"
FILLER_WORDS = [f"w{i}" for i in range(7, 40)]
# sub-word pieces: "great" is tokenized as "gr" + "##eat" (two tokens, one word)
PIECES = ["gr", "##eat", "aw", "##ful"] + [f"##s{i}" for i in range(44, VOCAB)]


def vocabulary() -> dict[str, int]:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", *FILLER_WORDS, *PIECES]
    if len(words) != VOCAB:
        raise RuntimeError(f"vocabulary has {len(words)} entries, expected {VOCAB}")
    return {w: i for i, w in enumerate(words)}


def synthetic_batch(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``[n, length]`` (filler words, some "good" and "bad") and labels."""
    ids = rng.integers(7, 40, size=(n, length))
    for row in ids:
        k_good, k_bad = rng.integers(0, 4, size=2)
        pos = rng.permutation(length)[: k_good + k_bad]
        row[pos[:k_good]] = GOOD
        row[pos[k_good:]] = BAD
    labels = ((ids == GOOD).sum(1) > (ids == BAD).sum(1)).astype(np.int64)
    return ids, labels


def write_tokenizer(path: Path) -> Path:
    """A WordPiece ``tokenizer.json`` over :func:`vocabulary` (lower case, whitespace split)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tok = Tokenizer(models.WordPiece(vocab=vocabulary(), unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


# -- builders -------------------------------------------------------------------------------


def _text_model(seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=2,
        pad_token_id=PAD,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    bert = BertForSequenceClassification(config)

    class Softmaxed(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = self.inner(input_ids=input_ids, attention_mask=attention_mask).logits
            return torch.softmax(logits, dim=-1)

    return Softmaxed(bert)


def train_text(steps: int = 600, seed: int = 0):  # type: ignore[no-untyped-def]
    """The text classifier trained with Adam on the synthetic task (lengths 6 to 135, some padding;
    about 20 s on one core)."""
    import torch

    torch.set_num_threads(1)
    model = _text_model(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        length = int(rng.integers(6, 136))
        ids, labels = synthetic_batch(rng, 32, length)
        mask = np.ones_like(ids)
        cut = rng.integers(length // 2, length + 1, size=len(ids))  # right padding
        for row, c in enumerate(cut):
            ids[row, c:] = PAD
            mask[row, c:] = 0
        labels = ((ids == GOOD).sum(1) > (ids == BAD).sum(1)).astype(np.int64)
        probs = model(torch.from_numpy(ids), torch.from_numpy(mask))
        loss = torch.nn.functional.nll_loss(torch.log(probs + 1e-9), torch.from_numpy(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def prune_linear(module, fraction: float):  # type: ignore[no-untyped-def]
    """A copy with the smallest-magnitude ``fraction`` of every linear layer's weights at zero."""
    import torch
    from torch.nn.utils import prune

    pruned = copy.deepcopy(module)
    for m in pruned.modules():
        if isinstance(m, torch.nn.Linear):
            prune.l1_unstructured(m, "weight", amount=fraction)
            prune.remove(m, "weight")
    return pruned


def export_text(module, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    ids = torch.full((2, 8), 7, dtype=torch.int64)
    mask = torch.ones((2, 8), dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["probabilities"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "probabilities": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    return path


TABULAR_FEATURES = ["age", "income", "debt", "tenure", "late_payments", "noise"]


def tabular_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Six standardized features; approved iff income - debt - late_payments > 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(TABULAR_FEATURES))).astype(np.float32)
    y = (x[:, 1] - x[:, 2] - 0.7 * x[:, 4] > 0).astype(np.int64)
    return x, y


def train_tabular(seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = nn.Sequential(nn.Linear(len(TABULAR_FEATURES), 16), nn.ReLU(), nn.Linear(16, 2))
    x, y = tabular_data(2000, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def export_tabular(module, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(2, len(TABULAR_FEATURES)),),
            str(path),
            input_names=["features"],
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def sklearn_pair(dense_path: Path, pruned_path: Path) -> None:
    """Logistic regression (``label`` and ``probabilities`` outputs) and a copy with its two
    smallest coefficients zeroed, converted with skl2onnx."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = tabular_data(2000, 1)
    dense = LogisticRegression(max_iter=500).fit(x, y)
    pruned = copy.deepcopy(dense)
    small = np.argsort(np.abs(pruned.coef_[0]))[:2]
    pruned.coef_[0, small] = 0.0
    for model, path in ((dense, dense_path), (pruned, pruned_path)):
        onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        path.write_bytes(onx.SerializeToString())


# -- the cached set ------------------------------------------------------------------------


@dataclass(frozen=True)
class ByomModels:
    folder: Path
    text_dense: Path
    text_pruned: Path
    tokenizer: Path
    tabular_dense: Path
    tabular_pruned: Path
    tabular_mean: Path
    sklearn_dense: Path
    sklearn_pruned: Path
    text_accuracy: float


def source_key() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def build_all(folder: Path) -> ByomModels:
    """Every model of the set in ``folder``, built unless a finished build with this source is there."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "done.json"
    files = {
        "text_dense": folder / "text_dense.onnx",
        "text_pruned": folder / "text_pruned.onnx",
        "tokenizer": folder / "tokenizer.json",
        "tabular_dense": folder / "tabular_dense.onnx",
        "tabular_pruned": folder / "tabular_pruned.onnx",
        "tabular_mean": folder / "tabular_mean.npy",
        "sklearn_dense": folder / "sklearn_dense.onnx",
        "sklearn_pruned": folder / "sklearn_pruned.onnx",
    }
    if not (done.is_file() and all(p.is_file() for p in files.values())):
        text = train_text()
        export_text(text, files["text_dense"])
        export_text(prune_linear(text, 0.5), files["text_pruned"])
        write_tokenizer(files["tokenizer"])
        accuracy = text_accuracy(text)
        tab = train_tabular()
        export_tabular(tab, files["tabular_dense"])
        export_tabular(prune_linear(tab, 0.5), files["tabular_pruned"])
        np.save(files["tabular_mean"], tabular_data(2000)[0].mean(0))
        sklearn_pair(files["sklearn_dense"], files["sklearn_pruned"])
        done.write_text(json.dumps({"text_accuracy": accuracy}))
    meta = json.loads(done.read_text())
    return ByomModels(folder=folder, text_accuracy=float(meta["text_accuracy"]), **files)


def text_accuracy(model) -> float:  # type: ignore[no-untyped-def]
    import torch

    ids, labels = synthetic_batch(np.random.default_rng(123), 256, 16)
    with torch.no_grad():
        probs = model(torch.from_numpy(ids), torch.ones_like(torch.from_numpy(ids))).numpy()
    return float((probs.argmax(1) == labels).mean())
