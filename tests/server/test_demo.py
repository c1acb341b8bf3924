"""The README's main job: ``sisguard demo`` serves the bundled pair and shows a prediction and an explanation."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_prints_predictions_and_an_explanation() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sisguard.client.cli", "demo"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = [line.split() for line in lines if re.match(r"^\s+\d+\s+\d+ \(", line)]
    assert len(rows) == 8
    correct = sum(r[0] == r[1] for r in rows)
    assert correct >= 7  # the bundled dense model is 98% accurate on the test split
    assert any(line.strip().startswith("dense  found") for line in lines)
    assert any(line.strip().startswith("pruned found") for line in lines)
    assert "agreement: IoU" in proc.stdout
    assert "Traceback" not in proc.stderr
