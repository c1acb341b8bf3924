"""Pair configs of the bring-your-own-model fixtures (docs/byom.md shows the same as YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.byom_models import TABULAR_FEATURES, ByomModels


def text_pair(m: ByomModels, **extra: Any) -> dict[str, Any]:
    return {
        "name": "text",
        "dense": str(m.text_dense),
        "pruned": str(m.text_pruned),
        "output_kind": "probabilities",
        "class_labels": ["negative", "positive"],
        "max_batch_size": 32,
        "text": {"pad_token_id": 0, "mask_token_id": 4, "tokenizer_file": str(m.tokenizer)},
        "explain": {"baseline": "pad_token", "threshold": 0.8},
        **extra,
    }


def tabular_pair(m: ByomModels, **extra: Any) -> dict[str, Any]:
    return {
        "name": "credit",
        "dense": str(m.tabular_dense),
        "pruned": str(m.tabular_pruned),
        "output_kind": "logits",
        "class_labels": ["declined", "approved"],
        "feature_names": list(TABULAR_FEATURES),
        "explain": {"baseline": "mean", "mean_file": str(m.tabular_mean), "threshold": 0.8},
        **extra,
    }


def sklearn_pair(m: ByomModels, tmp: Path, **extra: Any) -> dict[str, Any]:
    names = tmp / "features.txt"
    names.write_text("\n".join(TABULAR_FEATURES) + "\n")
    return {
        "name": "logreg",
        "dense": str(m.sklearn_dense),
        "pruned": str(m.sklearn_pruned),
        "output_kind": "probabilities",
        "feature_names_file": str(names),
        "explain": {"baseline": "mean", "mean_file": str(m.tabular_mean), "threshold": 0.7},
        **extra,
    }
