"""Explain a few test digits with the dense and the pruned model and write one picture each.

Start a server with the bundled digits pair first (``sisguard serve``), then::

    python examples/explain_digits.py                 # digits 0..3 into ./rationales/
    python examples/explain_digits.py --count 8 --out /tmp/pics --target-address 127.0.0.1:50051

Each PNG shows the input, the dense model's SIS and the pruned model's SIS over it, with IoU,
cross-sufficiency and top-1 agreement in the title. Needs ``pip install 'sisguard[plot]'``.
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

import numpy as np

from sisguard.client import Client
from sisguard.client.plot import agreement_summary, plot_explanation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-address", default="127.0.0.1:50051")
    parser.add_argument("--count", type=int, default=4, help="how many test digits (from the first)")
    parser.add_argument("--out", type=Path, default=Path("rationales"), help="folder for the PNGs")
    parser.add_argument("--features", default="pixel", help="pixel, element or patch:HxW")
    parser.add_argument("--max-sis", type=int, default=2)
    args = parser.parse_args()

    samples = np.load(Path(str(files("sisguard.server"))) / "models" / "digits" / "samples.npz")
    x, y = samples["x"][: args.count], samples["y"][: args.count]
    args.out.mkdir(parents=True, exist_ok=True)

    with Client(args.target_address, timeout=60) as client:
        for i, (digit, label) in enumerate(zip(x, y, strict=True)):
            e = client.explain("digits", digit, features=args.features, max_sis=args.max_sis)
            path = args.out / f"digit_{i:02d}_label_{label}.png"
            plot_explanation(digit, e, path, title=f"test digit {i} (label {label}) · explained class {e.target}")
            summary = agreement_summary(e.agreement) if e.agreement is not None else "one variant only"
            print(f"{path}: {summary}{' · DIVERGENT' if e.agreement and e.agreement.divergent else ''}")


if __name__ == "__main__":
    main()
