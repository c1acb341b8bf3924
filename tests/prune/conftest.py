"""Fixtures of the prune tests: the digits data set (loaded once) and the test-model module on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn digits as a :class:`sisguard.prune.data.Dataset`."""
    from sisguard.prune.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def tests_dir() -> Path:
    """This directory (holds ``prune_models_for_tests.py``)."""
    return HERE
