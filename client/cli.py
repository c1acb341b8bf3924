"""The ``sisguard`` command: placeholder dispatcher (filled in below)."""
