"""The errors of the wire codec.

Both sides map them to their own types: the server to gRPC status codes (``WireError`` is
INVALID_ARGUMENT, ``TooLarge`` RESOURCE_EXHAUSTED), the client to :class:`sisguard.client.InvalidInput`.
Messages say what was expected and what came; they never quote a whole tensor or shape.
"""

from __future__ import annotations

__all__ = ["TooLarge", "WireError"]


class WireError(ValueError):
    """A message does not fit the wire format: an unknown dtype or enum value, a byte length that
    does not match the shape, a value out of its dtype's range, an array that cannot be sent."""


class TooLarge(WireError):
    """A tensor's shape asks for more elements than the receiver allows."""
