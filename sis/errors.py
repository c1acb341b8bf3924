"""Errors of the SIS engine.

The engine raises only these. Callers map them to their own vocabulary (the server maps
:class:`InvalidInput` to INVALID_ARGUMENT, :class:`BudgetExceeded` to RESOURCE_EXHAUSTED and
:class:`ScoringError` to INTERNAL); every message is written for whoever supplied the input.
"""

from __future__ import annotations


class SISError(Exception):
    """Base of every error the engine raises."""


class InvalidInput(SISError, ValueError):
    """An input, baseline, group map or option does not fit: the message says what was expected."""


class BudgetExceeded(SISError):
    """The explanation needs more score rows than the evaluation budget allows."""

    def __init__(self, message: str, *, needed: int, budget: int | None) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget


class ScoringError(SISError):
    """The score function returned something other than one score per row."""
