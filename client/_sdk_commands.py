"""The SDK's part of the ``sisguard`` command (registered by :mod:`.cli`): ``models``, ``predict``,
``explain`` and ``health`` call a server, as the SDK at a terminal.

Each command prints a readable summary, or with ``--json`` one JSON document on stdout. Errors
print one line on stderr and exit 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from ._errors import DeadlineExceeded, InvalidInput, NotFound, SISGuardError, Unavailable
from ._features import Features
from ._options import DEFAULT_TARGET, TLS
from ._results import ExplainProgress, Explanation, PairInfo, Prediction, VariantExplanation
from ._sync import Client

__all__ = ["add_subcommands"]


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = subparsers.add_parser("models", help="list the pairs a server serves")
    _connection(models)
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(func=_command(models_command))

    predict = subparsers.add_parser("predict", help="predict one input file with the dense and pruned model")
    _connection(predict)
    _input(predict)
    predict.add_argument("--variant", choices=("dense", "pruned", "both"), default="both")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(func=_command(predict_command))

    explain = subparsers.add_parser(
        "explain", help="explain one input with sufficient input subsets of both models and their agreement"
    )
    _connection(explain)
    _input(explain)
    explain.add_argument("--target", type=int, help="class to explain (default: the dense model's top-1)")
    explain.add_argument("--threshold", type=float, help="tau: score a subset must keep (default: the pair's)")
    explain.add_argument("--relative", action="store_true", help="read --threshold as a fraction of f_dense(x)")
    explain.add_argument(
        "--features", type=_features, metavar="pixel|element|patch:HxW", help="feature groups (default: the pair's)"
    )
    explain.add_argument(
        "--baseline", help="zeros, mean, blur, pad_token, mask_token, or a number (default: the pair's)"
    )
    explain.add_argument("--words", action="store_true", help="--text: the sub-word tokens of a word form one feature")
    explain.add_argument(
        "--colour",
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="--text: highlight the SIS in terminal colours (auto: when stdout is a terminal), else [brackets]",
    )
    explain.add_argument("--max-sis", type=int, default=1, help="disjoint SIS to collect per model (default 1)")
    explain.add_argument("--variants", choices=("dense", "pruned", "both"), default="both")
    explain.add_argument("--batch-k", type=int, help="batched mode: features removed per BackSelect step")
    explain.add_argument("--max-evaluations", type=int, help="evaluation budget per model")
    explain.add_argument("--allow-partial", action="store_true", help="return what was found when the budget ends")
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.add_argument("--plot", type=Path, metavar="FILE.png", help="draw input | dense SIS | pruned SIS")
    explain.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal and the explanation takes a while)",
    )
    explain.set_defaults(func=_command(explain_command))

    health = subparsers.add_parser(
        "health",
        help="the pair's divergence verdict and its evidence (excess over the control per measure)",
        description="Ask the server for a pair's verdict (healthy, damaged, insufficient_data) with the excess "
        "of dense-vs-pruned over dense-vs-control and its interval for every measure (docs/signal.md). "
        "Exit status: 0 healthy, 3 damaged, 4 insufficient data.",
    )
    _connection(health)
    health.add_argument("pair", help="pair name (see `sisguard models`)")
    health.add_argument("--all", action="store_true", help="also list the measures that do not decide")
    health.add_argument("--json", action="store_true", help="print JSON")
    health.set_defaults(func=_command(health_command))


def _features(text: str) -> Features:
    try:
        return Features.parse(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument(
        "--target-address",
        default=os.environ.get("SISGUARD_TARGET", DEFAULT_TARGET),
        metavar="HOST:PORT",
        help=f"server address (default $SISGUARD_TARGET or {DEFAULT_TARGET})",
    )
    g.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca/--cert)")
    g.add_argument("--ca", type=Path, help="PEM file of the CA that signed the server's certificate")
    g.add_argument("--cert", type=Path, help="client certificate (PEM) for mutual TLS")
    g.add_argument("--key", type=Path, help="client private key (PEM) for mutual TLS")
    g.add_argument("--server-name", help="name to check in the server's certificate")
    g.add_argument("--token", help="bearer token (default $SISGUARD_TOKEN)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default 60)")


def _input(p: argparse.ArgumentParser) -> None:
    p.add_argument("pair", help="pair name (see 'sisguard models')")
    p.add_argument("input", type=Path, nargs="?", help=".npy array or image file (PNG, JPEG, ...)")
    p.add_argument("--text", help="text pairs: raw text, tokenized with the pair's tokenizer.json (instead of input)")
    p.add_argument(
        "--scale", type=float, default=None, help="images: grey levels are multiplied by this (default: the pair's)"
    )
    p.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="images: invert grey levels first, for dark ink on white (default: the pair's)",
    )


def _client(args: argparse.Namespace) -> Client:
    tls: TLS | None = None
    if args.tls or args.ca or args.cert or args.key or args.server_name:
        tls = TLS(
            root_certificates=args.ca, certificate_chain=args.cert, private_key=args.key, server_name=args.server_name
        )
    token = args.token or os.environ.get("SISGUARD_TOKEN") or None
    return Client(args.target_address, tls=tls, token=token, timeout=args.timeout)


def _command(fn: Callable[[argparse.Namespace, Client], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with _client(args) as client:
                return fn(args, client)
        except (Unavailable, DeadlineExceeded) as exc:
            return _fail(f"{exc} (server {args.target_address})")
        except SISGuardError as exc:
            return _fail(str(exc))
        except ImportError as exc:
            return _fail(str(exc))
        except BrokenPipeError:
            raise  # the reader of stdout went away: not an error (handled once, in cli.main)
        except OSError as exc:
            return _fail(f"{getattr(exc, 'filename', None) or ''} {exc.strerror or exc}".strip())
        except KeyboardInterrupt:
            return _fail("interrupted", 130)

    return run


def _fail(message: str, code: int = 1) -> int:
    print(f"sisguard: error: {message}", file=sys.stderr)
    return code


def _dump(doc: Any) -> None:
    print(json.dumps(doc, indent=2, allow_nan=False))


# -- models -----------------------------------------------------------------------------------


def models_command(args: argparse.Namespace, client: Client) -> int:
    pairs = client.models()
    if args.json:
        _dump({"pairs": [p.to_dict() for p in pairs]})
        return 0
    if not pairs:
        print("no pairs served")
    for p in pairs:
        d = p.explain_defaults
        print(f"{p.name}")
        print(f"  input     {p.input_name} {list(p.input_shape)} {p.input_dtype}")
        print(f"  output    {p.output_name} ({p.output_kind}, {p.num_outputs} outputs)")
        for name, f in (("dense", p.dense), ("pruned", p.pruned), *((("control", p.control),) if p.control else ())):
            print(
                f"  {name:<9} {f.path}  {f.nonzero_parameter_count}/{f.parameter_count} non-zero parameters"
                f"  on {f.execution_provider}  sha256 {f.sha256[:12]}"
            )
        print(f"  pruned    {p.prune_ratio:.1%} of the dense parameters removed")
        print(f"  verdict   against {p.verdict_reference} (sisguard health {p.name})")
        features = f"patch:{d.patch[0]}x{d.patch[1]}" if d.features == "patch" else d.features
        tau = f"{d.threshold:g}" + (" x f_dense(x)" if d.threshold_relative else "")
        print(f"  explain   tau {tau}, features {features}, baseline {d.baseline}, budget {d.max_evaluations}")
    return 0


_VERDICT_EXIT = {"healthy": 0, "damaged": 3, "insufficient_data": 4}


def health_command(args: argparse.Namespace, client: Client) -> int:
    h = client.pair_health(args.pair)
    if args.json:
        _dump(h.to_dict())
        return _VERDICT_EXIT.get(h.verdict, 1)
    print(f"{h.pair}: {h.verdict.upper().replace('_', ' ')}  (against the {h.reference}; "
          f"{h.samples} samples of the sparsest deciding measure, {h.min_samples} needed to decide; "
          f"intervals at {h.confidence:.0%} jointly)")
    if h.samples_needed:
        print(f"  needs {h.samples_needed} more samples before it can decide")
    print(f"  {'measure':<30} {'n':>5} {'pruned':>8} {'ref':>8} {'excess':>8}  {'interval':<19} {'margin':>7}  verdict")
    for m in h.measures if args.all else h.deciding:
        interval = "no samples" if m.samples == 0 else f"[{m.lower:+.3f}, {m.upper:+.3f}]"
        margin = f"{m.margin:.3f}" if m.deciding else "-"
        state = "DAMAGED" if m.damaged else ("ok" if m.deciding and m.samples >= h.min_samples else "-")
        print(f"  {m.name:<30} {m.samples:>5} {_fmt(m.pruned_mean):>8} {_fmt(m.reference_mean):>8} "
              f"{_signed(m.estimate):>8}  {interval:<19} {margin:>7}  {state}"
              + (f" (vs {m.reference})" if m.reference not in ("control", h.reference) else ""))
    return _VERDICT_EXIT.get(h.verdict, 1)


def _signed(v: float) -> str:
    return "n/a" if v != v else f"{v:+.3f}"


# -- inputs -----------------------------------------------------------------------------------


def _pair_info(client: Client, name: str) -> PairInfo:
    pairs = client.models()
    for p in pairs:
        if p.name == name:
            return p
    available = ", ".join(p.name for p in pairs) or "(none)"
    raise NotFound(f"unknown pair {name!r}; available: {available}")


def _load(args: argparse.Namespace, info: PairInfo) -> NDArray[Any]:
    from .inputs import read_input

    if args.input is None:
        raise InvalidInput("give an input file, or --text for a text pair")
    if args.text is not None:
        raise InvalidInput("give an input file or --text, not both")

    scale = info.image.scale if args.scale is None else args.scale
    invert = info.image.invert if args.invert is None else args.invert
    return read_input(args.input, info.input_shape, scale=scale, invert=invert)


# -- predict ----------------------------------------------------------------------------------


def _label(info: PairInfo, k: int) -> str:
    return info.class_labels[k] if 0 <= k < len(info.class_labels) else str(k)


def predict_command(args: argparse.Namespace, client: Client) -> int:
    info = _pair_info(client, args.pair)
    if args.text is not None and args.input is None:
        pred = client.predict_text(args.pair, args.text, variant=args.variant)
    else:
        pred = client.predict(args.pair, _load(args, info), variant=args.variant)
    if args.json:
        _dump(pred.to_dict() | {"labels": list(info.class_labels)})
        return 0
    _print_prediction(pred, info)
    return 0


def _print_prediction(pred: Prediction, info: PairInfo) -> None:
    rows = pred.first.top1.size
    print(f"{pred.pair}: {rows} input{'s' if rows != 1 else ''}")
    header = "  row"
    for name, v in (("dense", pred.dense), ("pruned", pred.pruned)):
        if v is not None:
            header += f"  {name + ' (p)':<16}"
    if pred.top1_agree is not None:
        header += "  agree  gap"
    print(header)
    for i in range(rows):
        line = f"  {i:>3}"
        for v in (pred.dense, pred.pruned):
            if v is not None:
                line += f"  {_label(info, int(v.top1[i])) + f' ({v.top1_probability[i]:.3f})':<16}"
        if pred.top1_agree is not None and pred.confidence_gap is not None:
            line += f"  {'yes' if pred.top1_agree[i] else 'NO':<5}  {pred.confidence_gap[i]:+.3f}"
        print(line)


# -- explain ----------------------------------------------------------------------------------


class _ProgressBar:
    """One line on a stream, redrawn from ExplainStream's progress events."""

    WIDTH = 24

    def __init__(self, stream: TextIO, total: int | None, max_sis: int, mode: str) -> None:
        self.stream = stream
        self.total = total
        self.max_sis = max_sis
        self.mode = mode
        self.started = time.monotonic()
        self.state: dict[str, ExplainProgress] = {}
        self.drawn = False
        self.pending = False  # an event arrived after the last redraw
        self.last = 0.0

    def enabled(self) -> bool:
        if self.mode == "never":
            return False
        if self.mode == "always":
            return True
        return self.stream.isatty() and time.monotonic() - self.started > 0.5

    def _bar(self, ev: ExplainProgress) -> str:
        total = self.total or max(ev.features_left + 1, 1)
        done = (ev.round + (total - ev.features_left) / total) / self.max_sis
        filled = round(max(0.0, min(1.0, done)) * self.WIDTH)
        return (
            f"{ev.variant} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"SIS {ev.round + 1}/{self.max_sis} {ev.features_left} left {ev.evaluations} evals"
        )

    def update(self, ev: ExplainProgress) -> None:
        self.state[ev.variant] = ev
        self.pending = True
        now = time.monotonic()
        if not self.enabled() or (self.drawn and now - self.last < 0.1):
            return
        self.last = now
        self._draw()

    def _draw(self) -> None:
        line = "  ".join(self._bar(e) for _, e in sorted(self.state.items()))
        self.stream.write(f"\r{line}\x1b[K" if self.stream.isatty() else f"{line}\n")
        self.stream.flush()
        self.drawn = True
        self.pending = False

    def close(self) -> None:
        if self.stream.isatty():
            if self.drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
        elif self.pending and self.enabled():  # a log keeps the final state of every variant
            self._draw()


def _num_features(info: PairInfo, features: Features | None) -> int | None:
    if features is None:
        d = info.explain_defaults
        if d.features == "patch":
            features = Features.patches(*d.patch)
        elif d.features in ("element", "pixel"):
            features = Features.parse(d.features)
        else:
            return None
    try:
        return int(features.group_map(info.input_shape).max()) + 1
    except InvalidInput:
        return None


def _baseline(text: str | None) -> str | float | None:
    if text is None or text in ("zeros", "mean", "blur", "pad_token", "mask_token"):
        return text
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(
            f"--baseline must be 'zeros', 'mean', 'blur', 'pad_token', 'mask_token' or a number, got {text!r}"
        ) from None


def explain_command(args: argparse.Namespace, client: Client) -> int:
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:  # before any work
        return _fail("--plot needs matplotlib: pip install matplotlib (or '.[plot]' in a sisguard checkout)", 2)
    info = _pair_info(client, args.pair)
    if args.text is not None and args.input is None:
        return _explain_text(args, client, info)
    x = _load(args, info)
    tabular = x.ndim == 1
    bar = _ProgressBar(sys.stderr, _num_features(info, args.features), max(1, args.max_sis), args.progress)
    result: Explanation | None = None
    try:
        for event in client.explain_stream(
            args.pair,
            x,
            features=args.features,
            **_explain_options(args),
            return_backselect=tabular and args.plot is not None,  # the bar chart shows BackSelect's scores
        ):
            if isinstance(event, ExplainProgress):
                bar.update(event)
            else:
                result = event
    finally:
        bar.close()
    if result is None:  # explain_stream raises before this; kept for the type checker
        return _fail("no explanation came back")
    if args.plot is not None:
        from .plot import plot_explanation, plot_features

        title = f"{result.pair} · target {_label(info, result.target)} · τ {result.threshold:.3g}"
        if tabular:
            plot_features(x, result, args.plot, names=info.feature_names, title=title)
        else:
            plot_explanation(x, result, args.plot, title=title)
    if args.json:
        _dump(result.to_dict() | {"labels": list(info.class_labels)})
    else:
        _print_explanation(result, info)
        if args.plot is not None:
            print(f"picture written to {args.plot}")
    return 0


def _explain_options(args: argparse.Namespace) -> dict[str, Any]:
    """The explain options both ``explain`` forms take from the command line."""
    return {
        "target": args.target,
        "threshold": args.threshold,
        "relative": args.relative,
        "baseline": _baseline(args.baseline),
        "max_sis": args.max_sis,
        "variants": args.variants,
        "mode": "batched" if args.batch_k else "exact",
        "batch_k": args.batch_k,
        "max_evaluations": args.max_evaluations,
        "allow_partial": args.allow_partial,
    }


def _explain_text(args: argparse.Namespace, client: Client, info: PairInfo) -> int:
    """``explain --text``: the SIS printed as the text with the sufficient words highlighted."""
    result = client.explain_text(
        args.pair,
        args.text,
        words=args.words,
        **_explain_options(args),
    )
    e = result.explanation
    if args.plot is not None:
        from .plot import plot_text

        plot_text(result, args.plot, title=f"{e.pair} · target {_label(info, e.target)} · τ {e.threshold:.3g}")
    if args.json:
        _dump(result.to_dict() | {"labels": list(info.class_labels)})
        return 0
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    _print_explanation(e, info)
    for name, v in e.variants.items():
        for i in range(len(v.sis)):
            print(f"{name:<7} SIS {i + 1}: {result.highlighted(name, colour=colour, index=i)}")
    if args.plot is not None:
        print(f"picture written to {args.plot}")
    return 0


def _yes(v: bool | None) -> str:
    return "n/a" if v is None else ("yes" if v else "NO")


def _fmt(v: float) -> str:
    return f"{v:.3f}" if math.isfinite(v) else "n/a"


def _grid(mask: NDArray[np.bool_]) -> list[str] | None:
    m = np.asarray(mask.any(axis=0) if mask.ndim == 3 else mask, dtype=bool)
    if m.ndim != 2 or m.shape[0] > 32 or m.shape[1] > 64:
        return None
    return ["".join("#" if v else "." for v in row) for row in m]


def _print_variant(name: str, v: VariantExplanation, names: tuple[str, ...] = ()) -> None:
    print(
        f"{name:<7} {v.status.replace('_', ' ')}: confidence {_fmt(v.confidence)}, top-1 {v.top1}, "
        f"baseline {_fmt(v.baseline_score)}, {v.evaluations} evaluations, {v.seconds:.3f} s"
    )
    for i, s in enumerate(v.sis):
        feats = s.features.tolist()
        labels = [names[f] if names and 0 <= f < len(names) else str(f) for f in feats]
        shown = ", ".join(labels[:16]) + (", ..." if len(feats) > 16 else "")
        print(f"        SIS {i + 1}: {len(feats)} features, score {_fmt(s.score)}: [{shown}]")


def _print_explanation(e: Explanation, info: PairInfo) -> None:
    print(
        f"{e.pair}: target {_label(info, e.target)} (class {e.target}), tau {_fmt(e.threshold)}, "
        f"{e.num_features} features{' (cached)' if e.cached else ''}"
    )
    for name, v in e.variants.items():
        _print_variant(name, v, info.feature_names)
    grids = {name: _grid(v.sis[0].mask) for name, v in e.variants.items() if v.sis}
    if grids and all(g is not None for g in grids.values()):
        names = list(grids)
        rows = [g for g in grids.values() if g is not None]
        print("        " + "  ".join(f"{n:<{len(rows[0][0])}}" for n in names))
        for parts in zip(*rows, strict=True):
            print("        " + "  ".join(parts))
    a = e.agreement
    if a is not None:
        degenerate = [f"{n} {v.status.replace('_', ' ')}" for n, v in e.variants.items() if v.status != "found"]
        # an explanation without a SIS is no evidence of agreement: no IoU for it
        iou = (f"IoU n/a ({', '.join(degenerate)})" if degenerate
               else f"IoU {_fmt(a.iou_first)} (union {_fmt(a.iou_union)})")
        print(
            f"agree   top-1 {'yes' if a.top1_agree else 'NO'}, confidence gap {a.confidence_gap:+.3f}, "
            f"{iou}, rank correlation {_fmt(a.rank_correlation)}"
        )
        print(
            f"        dense SIS keeps pruned: {_yes(a.dense_sis_sufficient_for_pruned)} "
            f"({_fmt(a.dense_sis_score_on_pruned)}); pruned SIS keeps dense: "
            f"{_yes(a.pruned_sis_sufficient_for_dense)} ({_fmt(a.pruned_sis_score_on_dense)})"
        )
        if a.divergent:
            print(f"DIVERGENT: {', '.join(a.reasons)}")
