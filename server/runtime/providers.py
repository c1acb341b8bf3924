"""Choosing the ONNX Runtime execution provider: CUDA when it really works, else CPU.

onnxruntime-gpu lists CUDAExecutionProvider as available even on machines without a GPU or
without the CUDA 13 / cuDNN 9 libraries, and then prints a wall of errors when a session
tries it. We probe first (driver library, then a session with ONNX Runtime's logging
silenced) and report the outcome in one line.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass

import onnxruntime as ort

log = logging.getLogger(__name__)

_ORT_NAMES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


@dataclass(frozen=True)
class ProviderChoice:
    """Providers to hand to a session, and why CUDA is absent when it was wanted."""

    providers: list[str | tuple[str, dict[str, str]]]
    cuda_reason: str | None


def _cuda_driver_present() -> str | None:
    """None when libcuda loads, else the reason it does not."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 not found)"
    return None


def choose_providers(preference: list[str], device_id: int) -> ProviderChoice:
    """Translate the configured preference into ONNX Runtime providers that can load here."""
    available = set(ort.get_available_providers())
    chosen: list[str | tuple[str, dict[str, str]]] = []
    reason: str | None = None
    for name in preference:
        ort_name = _ORT_NAMES[name]
        if name == "cuda":
            if ort_name not in available:
                reason = "this onnxruntime build has no CUDA provider"
                continue
            reason = _cuda_driver_present()
            if reason:
                continue
            chosen.append((ort_name, {"device_id": str(device_id)}))
        elif ort_name in available:
            chosen.append(ort_name)
    if not chosen:
        chosen.append("CPUExecutionProvider")
    return ProviderChoice(chosen, reason if "cuda" in preference else None)


def create_session(
    path: str, choice: ProviderChoice, options: ort.SessionOptions
) -> tuple[ort.InferenceSession, str | None]:
    """A session on the first provider that works, and why CUDA was not used (None if it was).

    A CUDA provider that fails to initialise (missing cuDNN, no device) falls back to CPU
    silently inside ONNX Runtime; we read back what the session really uses.
    """
    wants_cuda = any(isinstance(p, tuple) and p[0] == "CUDAExecutionProvider" for p in choice.providers)
    if wants_cuda:
        ort.set_default_logger_severity(4)  # the probe's failures are reported by us, in one line
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=choice.providers)
    finally:
        ort.set_default_logger_severity(3)  # errors only (ONNX Runtime offers no getter to restore)
    reason = choice.cuda_reason
    if wants_cuda and session.get_providers()[0] != "CUDAExecutionProvider":
        reason = "the CUDA provider failed to initialise (CUDA 13 and cuDNN 9 are required)"
    return session, reason
