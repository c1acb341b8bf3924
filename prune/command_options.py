"""The options ``sisguard prune`` and ``sisguard evaluate`` share, and what they build from them:
the model-and-data and training argument groups, the training configurations, the model and the
dataset. Only argparse at module level; torch loads when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_model_data_args", "add_training_args", "build_model_and_data", "log_of", "train_configs"]


def log_of(args: argparse.Namespace) -> Any:
    """The progress printer (lines on stderr), ``None`` with ``--quiet``."""
    if getattr(args, "quiet", False):
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def add_model_data_args(parser: argparse.ArgumentParser) -> None:
    """``--arch``/``--model``/``--state-dict``/``--width`` and ``--data``/``--synthetic-n``."""
    group = parser.add_argument_group("model and data")
    group.add_argument("--arch", help="built-in architecture: digits_cnn, digits_mlp or resnet_cifar")
    group.add_argument("--model", help="user model as package.module:factory (returns an nn.Module)")
    group.add_argument("--state-dict", help="torch.save'd state dict for the model (then --epochs defaults to 0)")
    group.add_argument("--width", type=int, help="channel width of a built-in architecture")
    group.add_argument("--data", default="digits", help="digits, synthetic32 or a path to an .npz "
                       "with x_train, y_train, x_test, y_test (default: digits)")
    group.add_argument("--synthetic-n", type=int, default=4000, help="samples of synthetic32 (default 4000)")


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """Cycles, epochs, learning rates, optimizer, seed, opset and the SiPP/PFP/FT knobs."""
    group = parser.add_argument_group("training")
    group.add_argument("--cycles", type=int, default=3, help="prune → retrain cycles (default 3)")
    group.add_argument("--epochs", type=int, help="dense training epochs (default 30; 0 with --state-dict)")
    group.add_argument("--retrain-epochs", type=int, default=10, help="retraining epochs per cycle (default 10)")
    group.add_argument("--lr", type=float, default=3e-3, help="dense learning rate (default 3e-3)")
    group.add_argument("--retrain-lr", type=float, default=1e-3, help="retraining learning rate (default 1e-3)")
    group.add_argument("--optimizer", default="adam", help="adam or sgd (default adam)")
    group.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    group.add_argument("--seed", type=int, default=0, help="seed of data order, init and noise (default 0)")
    group.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default 18)")
    group.add_argument("--channel-multiple", type=int, default=1,
                       help="FT: keep channel counts at multiples of this; 8 or 16 run faster on CPUs "
                            "but reach the ratio more coarsely (default 1)")
    group.add_argument("--sensitivity-samples", type=int, default=128,
                       help="SiPP/PFP: training inputs whose activations give the sensitivities, drawn "
                            "afresh each cycle (default 128)")
    group.add_argument("--selection", default="sample",
                       help="SiPP/PFP: sample (importance sampling by sensitivity, rescaled; the provable "
                            "variant) or topk (keep the most sensitive, deterministic) (default sample)")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def train_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The dense training and the retraining configuration of the training options."""
    from sisguard.prune.train import TrainConfig

    epochs = args.epochs if args.epochs is not None else (0 if args.state_dict else 30)
    dense = TrainConfig(epochs=epochs, lr=args.lr, optimizer=args.optimizer, batch_size=args.batch_size)
    retrain = TrainConfig(epochs=args.retrain_epochs, lr=args.retrain_lr, optimizer=args.optimizer,
                          batch_size=args.batch_size)
    return dense, retrain


def build_model_and_data(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The model (untrained or loaded), the dataset, and the model description for the manifest."""
    from sisguard.prune.data import load_dataset
    from sisguard.prune.models import build_model
    from sisguard.prune.pipeline import seed_everything

    seed_everything(args.seed)  # the model's initial weights depend on it
    data = load_dataset(args.data, seed=args.seed, synthetic_n=args.synthetic_n)
    model = build_model(arch=args.arch, factory=args.model, state_dict=args.state_dict,
                        num_classes=data.num_classes, in_channels=data.input_shape[0], width=args.width)
    info = {"arch": args.arch, "factory": args.model, "state_dict": args.state_dict, "width": args.width}
    return model, data, {k: v for k, v in info.items() if v is not None}
