"""The one error type of the audit: every message says what was expected."""

from __future__ import annotations


class AuditError(Exception):
    """An audit cannot start or continue; the message says why and what to do."""
