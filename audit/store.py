"""An audit's folder: ``manifest.json``, ``shards/part-<chunk>.parquet``, ``summary.json``.

The manifest (and ``groups.npy``, the feature group map) is written first and fixes what the
audit is (dataset fingerprint, models, explain settings, chunk size): inputs
``[k * chunk_size, (k + 1) * chunk_size)`` form chunk ``k`` and land in shard ``k``. A shard is
written to a temporary name and renamed into place, so a shard either exists whole or not at all;
an interrupted audit resumes by running exactly the chunks without a shard, and no input can be
explained twice or lost. Resuming with a different dataset or settings is refused (a new output
folder is needed).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from sisguard.audit.errors import AuditError
from sisguard.audit.schema import audit_schema
from sisguard.audit.worker import ChunkOutput

MANIFEST = "manifest.json"
SHARDS = "shards"
GROUPS = "groups.npy"
LOCK = ".lock"
FORMAT = 1


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The manifest without the dataset's path (the same data may be resumed from another place)."""
    out = dict(doc)
    out["dataset"] = {k: v for k, v in dict(doc.get("dataset", {})).items() if k != "path"}
    return out


class AuditStore:
    """Reads and writes one audit folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shards = root / SHARDS
        self._lock: IO[str] | None = None

    # -- manifest ---------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any] | None:
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise AuditError(f"{path} is not readable JSON: {exc}") from exc
        return doc

    def open(self, identity: dict[str, Any], groups: np.ndarray) -> bool:
        """Create the folder, manifest and group map, or check an existing manifest matches; True when resuming."""
        existing = self.manifest()
        doc = {"format": FORMAT, **identity}
        if existing is not None:
            old, new = _comparable(existing), _comparable(json.loads(json.dumps(doc)))
            if old != new:
                changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
                raise AuditError(
                    f"{self.root} holds an audit of a different dataset or settings (differs in: "
                    f"{', '.join(changed)}); resume with the same ones or choose a new output folder"
                )
            return True
        if self.root.exists() and any(p.name != LOCK for p in self.root.iterdir()):
            raise AuditError(f"{self.root} exists and is not an audit folder (no {MANIFEST}); choose a new one")
        self.shards.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(groups))
        _write_atomic(self.root / GROUPS, buffer.getvalue())
        _write_atomic(self.root / MANIFEST, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
        return False

    def groups(self) -> np.ndarray:
        """The feature group map every SIS of the audit refers to."""
        try:
            return np.load(self.root / GROUPS, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AuditError(f"{self.root / GROUPS} is missing or unreadable: {exc}") from exc

    # -- one run at a time ----------------------------------------------------------------

    def lock(self) -> None:
        """Hold the folder for this process (released when it exits): a second audit running on the
        same folder at the same time would explain the same chunks twice."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fh = (self.root / LOCK).open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise AuditError(f"another audit is running in {self.root}; wait for it or stop it first") from None
        self._lock = fh

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- shards -----------------------------------------------------------------------------

    def shard_path(self, index: int) -> Path:
        return self.shards / f"part-{index:06d}.parquet"

    def done(self) -> set[int]:
        """Chunks whose shard is in place (temporary files of an interrupted write are removed)."""
        out: set[int] = set()
        if not self.shards.is_dir():
            return out
        for p in self.shards.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
            elif p.name.startswith("part-") and p.suffix == ".parquet":
                out.add(int(p.stem.split("-", 1)[1]))
        return out

    def write(self, output: ChunkOutput, variants: tuple[str, ...]) -> int:
        """Write one chunk's shard atomically; returns its row count."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = audit_schema(variants)
        meta = {"worker": output.worker, "seconds": output.seconds, "rows": output.rows}
        table = pa.Table.from_pydict(output.columns, schema=schema).replace_schema_metadata(
            {"sisguard.audit": json.dumps(meta)}
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        _write_atomic(self.shard_path(output.index), sink.getvalue().to_pybytes())
        return table.num_rows

    def shard_meta(self) -> list[dict[str, Any]]:
        """The worker, seconds and model rows recorded in each shard's metadata."""
        import pyarrow.parquet as pq

        out = []
        for p in sorted(self.shards.glob("part-*.parquet")):
            meta = pq.read_schema(p).metadata or {}
            raw = meta.get(b"sisguard.audit")
            if raw:
                out.append(json.loads(raw))
        return out

    def read(self):  # type: ignore[no-untyped-def]
        """Every shard as one table sorted by ``id``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        paths = sorted(self.shards.glob("part-*.parquet"))
        if not paths:
            raise AuditError(f"{self.root} holds no shards yet; run `sisguard audit` first")
        table = pa.concat_tables([pq.read_table(p) for p in paths]).replace_schema_metadata(None)
        return table.sort_by("id")
