"""Errors of the pruning toolkit.

Every problem a user can fix (a bad option, a model the method cannot prune, a dataset
that does not fit the model) raises :class:`PruneError` with a message that says which
input is wrong and why. The CLI prints that one line and exits with status 2.
"""

from __future__ import annotations


class PruneError(Exception):
    """A user-facing error: bad option, unsupported model or mismatched data."""


class UnsupportedModelError(PruneError):
    """The pruning method cannot handle a layer or operation of the model."""


class DataMismatchError(PruneError):
    """The dataset's shapes or labels do not fit the model."""
