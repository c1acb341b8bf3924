"""What an audit is asked to do: built once (from the command line or by a caller) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AuditOptions(BaseModel):
    """Options of one audit. ``None`` takes the pair's ``explain`` defaults from the server config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Path = Field(description=".npz file, folder of images, or Parquet file.")
    out: Path = Field(description="Output folder: manifest.json, shards/part-*.parquet, summary.json.")
    config: Path | None = Field(None, description="Server config with the pair (default: the bundled one).")
    pair: str | None = Field(None, description="Pair name (default: the config's only or first pair).")
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="tau (absolute; the pair's default when unset)."
    )
    max_sis: int | None = Field(None, ge=1, le=64, description="SIS collected per model and input.")
    batch_k: int = Field(1, ge=1, description="Features removed per BackSelect step (1: exact).")
    max_evaluations: int | None = Field(
        None, ge=1, description="Evaluation budget per model and input (the pair's default when unset)."
    )
    allow_partial: bool = Field(True, description="Past the per-input budget, keep what was found (status partial).")
    max_total_evaluations: int | None = Field(
        None, ge=1, description="Stop scheduling new chunks once this many model rows ran (resume continues)."
    )
    chunk_size: int = Field(8, ge=1, le=100_000, description="Inputs per chunk (one shard per chunk).")
    limit: int | None = Field(None, ge=1, description="Audit only the first N inputs of the dataset.")
    workers: int | None = Field(None, ge=1, description="Workers (default: one per core, or per Ray CPU).")
    ray_address: str | None = Field(None, description="Ray cluster address; unset: a local process pool.")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per Ray actor (its sessions then prefer CUDA).")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Execution provider preference of the sessions.")
    retries: int = Field(3, ge=0, le=100, description="Times a chunk whose worker died is run again.")
    progress: bool = Field(True, description="Draw a progress bar on stderr (only on a terminal).")

    @model_validator(mode="after")
    def _gpus_need_ray(self) -> AuditOptions:
        if self.num_gpus and self.ray_address is None:
            raise ValueError("num_gpus is per Ray actor: give --ray-address too (locally use --device cuda)")
        return self
