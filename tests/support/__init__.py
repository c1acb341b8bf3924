"""Shared test helpers: small ONNX models exported with torch, and a live server on a free port."""
