"""Which baseline should a pair's pixels take? Degenerate explanations per baseline, measured.

Run from the repository root::

    python bench/bench_baselines.py            # the bundled digits pair on its 450 test digits

For each baseline (zeros, the training-set mean image, the input blurred with σ = 1, 2 and 3
pixels) it explains held-out digits with the bundled pair's other defaults (τ = 0.9 absolute,
one feature per pixel) through the server's core in process, and counts per model how often the
explanation is degenerate: ``baseline_sufficient`` (the baseline alone already keeps the model at
τ, so the SIS is empty and says nothing) and ``not_confident`` (f(x) < τ), besides the mean SIS
size. A baseline that is sufficient for common classes makes every such input look like perfect
agreement; the better baseline has fewer of them at a similar SIS size.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from sisguard.prune.data import load_digits
from sisguard.server.config import default_config_path, load_settings
from sisguard.server.core.dataplane import DataPlane
from sisguard.server.core.resolve import ExplainOptions

BASELINES = [("zeros", {"baseline": "zeros"}), ("mean", {"baseline": "mean"}),
             *((f"blur σ={s:g}", {"baseline": "blur", "baseline_blur_sigma": s}) for s in (1.0, 2.0, 3.0))]


async def run(n: int) -> None:
    data = load_digits()  # the split the bundled pair was trained on: its test images are held out
    x_train, x_test = data.x_train, data.x_test
    base = yaml.safe_load(default_config_path().read_text())
    pair = base["pairs"][0]
    models = default_config_path().parent
    print(f"bundled pair {pair['name']}: {n} held-out digits, tau {pair['explain']['threshold']}, "
          f"features {pair['explain']['features']}\n")
    print("| baseline | dense: baseline sufficient | dense: not confident | pruned: baseline sufficient "
          "| pruned: not confident | mean SIS size (dense / pruned) |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        mean = Path(tmp) / "mean.npy"
        np.save(mean, x_train.mean(axis=0))
        for label, explain in BASELINES:
            cfg = dict(pair)
            for key in ("dense", "pruned", "control"):
                cfg[key] = str(models / pair[key])
            cfg["explain"] = {**pair["explain"], **explain, "mean_file": str(mean)}
            off = {"sample_rate": 0.0}
            cfg["shadow"] = {**off, "noise_probe": off, "shift_probe": {**off, "value_range": [0.0, 1.0]}}
            path = Path(tmp) / "c.yaml"
            path.write_text(yaml.safe_dump({"pairs": [cfg], "runtime": {"providers": ["cpu"]}}))
            service = DataPlane(load_settings(path))
            service.load()
            service.start()
            status: dict[str, Counter[str]] = {"dense": Counter(), "pruned": Counter()}
            sizes: dict[str, list[int]] = {"dense": [], "pruned": []}
            for row in x_test[:n]:
                e = (await service.explain(pair["name"], row[None], ExplainOptions(), None)).explanation
                for v, r in (("dense", e.dense), ("pruned", e.pruned)):
                    status[v][r.status] += 1
                    if r.status == "found":
                        sizes[v].append(len(r.collection[0].features))
            await service.close()

            def share(v: str, s: str, status: dict[str, Counter[str]] = status) -> str:
                return f"{100 * status[v][s] / n:.1f} %"

            print(f"| {label} | {share('dense', 'baseline_sufficient')} | {share('dense', 'not_confident')} "
                  f"| {share('pruned', 'baseline_sufficient')} | {share('pruned', 'not_confident')} "
                  f"| {np.mean(sizes['dense']):.1f} / {np.mean(sizes['pruned']):.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=450, help="test digits to explain (default: all 450)")
    asyncio.run(run(ap.parse_args().n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
