"""Write server/models/digits/samples.npz: 32 test-split digits (x [32,1,8,8] float32 in [0,1], y labels).

The demo and the examples explain these. Deterministic; run from the repository root:

    python scripts/make_digit_samples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sisguard.prune.data import load_digits


def main() -> None:
    data = load_digits()
    out = Path(__file__).resolve().parent.parent / "server" / "models" / "digits" / "samples.npz"
    np.savez_compressed(out, x=data.x_test[:32].astype(np.float32), y=data.y_test[:32].astype(np.int64))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
