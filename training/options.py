"""``python -m training``: train, evaluate and export the fire classifier into a new run folder.

Each run writes runs/<start>-<model hash>/ (model files, card, reports, train.log); nothing reaches models/, where
serving reads the model, until ``python -m training promote RUN`` has checked it. TensorFlow is imported only
once the arguments are checked, so --help answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Kept apart from the model code and from numpy, scikit-learn and the core, so that --help and usage errors answer
# at once: the command's own modules are imported only once the arguments are good.
BACKBONES = ("compact", "xception")
DEFAULT_SIZES = {"compact": 160, "xception": 224}
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets"
DEFAULT_SOURCES = ("forest-fire", "fire-dataset", "weather", "houses")
DEFAULT_RUNS = ROOT / "runs"


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _from_0_to_1(text: str, what: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:  # NaN too
        raise argparse.ArgumentTypeError(f"{what} is between 0 and 1, got {text}")
    return value


def probability(text: str) -> float:
    """An ``argparse`` type for a share of photos: 0 to 1 (a typed 30 meaning 30 % would silently mean always)."""
    return _from_0_to_1(text, "a probability")


IMAGE_SIDES = (32, 1024)  # the network halves a side 4 times; 1,024 px is 3 MB a photo decoded, 20 times the served size


def image_side(text: str) -> int:
    """An ``argparse`` type for the side of the square photos a network is fitted on, in pixels (a typo of 16000 would
    decode every photo to 768 MB before the fit fails)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not IMAGE_SIDES[0] <= value <= IMAGE_SIDES[1]:
        raise argparse.ArgumentTypeError(f"an image side is from {IMAGE_SIDES[0]} to {IMAGE_SIDES[1]} pixels, got {text}")
    return value


WIDTHS = (0.25, 8.0)  # width 8 is 64 times width 1's parameters (9 M); 20, meant as 2.0, would not fit in memory


def network_width(text: str) -> float:
    """An ``argparse`` type for the compact backbone's channel multiplier."""
    value = _number(text)
    if not WIDTHS[0] <= value <= WIDTHS[1]:
        raise argparse.ArgumentTypeError(f"a network width is from {WIDTHS[0]:g} to {WIDTHS[1]:g}, got {text}")
    return value


def ema_momentum(text: str) -> float:
    """An ``argparse`` type for the momentum of a moving average of the weights: 0 (off), or at least 0.5 and under 1
    (1 would never move from the first weights; a small one averages nothing)."""
    value = _number(text)
    if value != 0.0 and not 0.5 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a moving average's momentum is 0 (off) or from 0.5 to under 1, got {text}")
    return value


CROP_SCALE = 0.7  # the default smallest share of each side a training crop keeps (augment.Recipe.crop_scale)
CROP_SCALES = (0.25, 1.0)  # a crop under a quarter of the side would be mostly the resize's blur


def crop_scale(text: str) -> float:
    """An ``argparse`` type for the smallest share of each side a training crop keeps (1: no zoom, only flips)."""
    value = _number(text)
    if not CROP_SCALES[0] <= value <= CROP_SCALES[1]:  # NaN too
        raise argparse.ArgumentTypeError(f"a crop scale is from {CROP_SCALES[0]:g} to {CROP_SCALES[1]:g}, got {text}")
    return value


BATCH_NORM_MOMENTUM = 0.99  # Keras's default, and the served models'


def bn_momentum(text: str) -> float:
    """An ``argparse`` type for the batch-norm statistics' momentum: over 0 and under 1 (1 would never leave the
    untrained statistics; 99 was meant as 0.99)."""
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"a batch-norm momentum is over 0 and under 1, got {text}")
    return value


def source_balance(text: str) -> float:
    return _from_0_to_1(text, "a source balance")


def add_source_balance_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source-balance", type=source_balance, default=0.0, metavar="POWER",
                   help="weigh each source's photos so that the sources of a class count alike: 1 gives each the same "
                        "share of its class, 0 (default) shares by their numbers of photos, between them partly")


def add_grayscale_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grayscale-probability", type=probability, default=0.0,  # augment.GRAYSCALE_PROBABILITY
                   help="share of training photos made grey, on both classes, so that flame is told by more than its "
                        "colour (default 0: off)")


def add_crop_scale_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--crop-scale", type=crop_scale, default=CROP_SCALE, metavar="SHARE",
                   help="smallest share of each side a training photo's random crop keeps, resized back to the full side "
                        "(default 0.7: crops of 70 to 100 %%; smaller zooms in further, onto parts of a scene)")


def add_bn_momentum_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bn-momentum", type=bn_momentum, default=BATCH_NORM_MOMENTUM, metavar="MOMENTUM",
                   help="how slowly the batch-norm statistics that validation and serving use follow the training batches "
                        f"(default {BATCH_NORM_MOMENTUM}, Keras's): 0.9 forgets the untrained network's statistics within some "
                        "30 steps, 0.99 within some 300, and until then validation judges the weights by the wrong statistics")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="python -m training promote RUN [--force] [--models DIR] puts a finished run's model into "
                                       "models/ after checking it (python -m training promote --help)")
    p.add_argument("data", nargs="*", type=Path, help=f"folders holding fire/ and nofire/ subfolders, at any depth (default: {DEFAULT_DATA})")
    p.add_argument("--backbone", choices=BACKBONES, default="compact", help="compact: small CNN from scratch (default); xception: the original study's")
    p.add_argument("--weights", choices=("none", "imagenet"), default="none", help="pretrained weights (imagenet needs internet; xception only)")
    p.add_argument("--image-size", type=image_side, help="input side in pixels, 32 to 1024 (default: " + ", ".join(f"{n} {b}" for b, n in DEFAULT_SIZES.items()) + ")")
    p.add_argument("--width", type=network_width, default=2.0,
                   help="channel multiplier of the compact backbone (default 2.0: 553 k parameters; 1.0: 145 k, the previous model)")
    add_bn_momentum_option(p)
    p.add_argument("--loss", choices=("focal", "crossentropy"), default="focal",
                   help="focal (default) down-weights easy photos so hard negatives such as sunsets count more")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=10, help="early stopping patience in epochs (on validation AUC)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--ema", type=ema_momentum, default=0.0, metavar="MOMENTUM",
                   help="validate and keep an exponential moving average of the weights, this momentum per step, instead of "
                        "the weights themselves (default 0: off; e.g. 0.99)")
    p.add_argument("--val-fraction", type=float, default=0.3, help="share of images held out for validation (default 0.3, as the original study)")
    p.add_argument("--white-balance-probability", type=probability, default=0.8,
                   help="share of training photos given a random warmer or cooler white balance (default 0.8; 0 turns it off)")
    p.add_argument("--white-balance-strength", type=float, default=0.25,
                   help="largest red/blue gain change of a white-balance shift (default 0.25: gains 0.75-1.25)")
    add_source_balance_option(p)
    p.add_argument("--mix-probability", type=probability, default=None,
                   help="share of training photos that get another photo pasted in (default 0.35; 0 turns scene mixing off)")
    p.add_argument("--decoy-probability", type=probability, default=0.0,
                   help="share of training photos given a decoy: fire's colours without fire (a warm-painted object, a red "
                        "or orange light, night lights), on both classes (default 0: off)")
    add_grayscale_option(p)
    add_crop_scale_option(p)
    p.add_argument("--holdout", action="append", default=[], metavar="SOURCE",
                   help="set a whole source aside (e.g. houses): never trained on, never used for the threshold, reported "
                        "apart as an unseen source; repeatable")
    p.add_argument("--tta", choices=("flip", "none"), default="none",
                   help="none (default): one pass; flip: the exported model averages its verdicts on the photo and its mirror "
                        "image (twice the model time; for width 2.0 it gained 0.002 of out-of-fold balanced accuracy, so the "
                        "default spends that time on width instead)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--loso", type=Path, metavar="REPORT",
                   help="a `python -m training.loso --json` report of this recipe's leave-one-source-out folds: its out-of-fold "
                        "threshold replaces the one validation would choose, and its figures go into the card and plots")
    p.add_argument("--trained", type=Path, nargs="+", metavar="DIR",
                   help="take the weights fitted by `python -m training.accelerated one` into DIR (on a GPU machine, from a "
                        "pack of the same data) instead of fitting here; everything else runs as usual. Several DIRs (one "
                        "recipe, other seeds) are served as one model, the mean of their verdicts: an ensemble. A DIR can also be a "
                        "finished run folder (or models/) whose model is one such fit, so the served fit can join an ensemble")
    p.add_argument("--limit-per-class", type=int, help="use at most N images from each class folder (smoke runs)")
    p.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="where run folders go (default: runs/)")
    p.add_argument("--resume", type=Path, metavar="RUN",
                   help="an incomplete run folder (runs/<start>-incomplete) whose fit was stopped (Ctrl-C, a closed "
                        "laptop, a reclaimed machine): the same command with --resume RUN goes on from its last finished "
                        "epoch, as an uninterrupted fit would have, and finishes the run there")
    p.add_argument("--output", type=Path,
                   help="also install the finished model set (fire_classifier.{keras,tflite,json}, reports/) into this folder, "
                        "without promote's checks; naming models/ warns, as it replaces the served model")
    p.add_argument("--name", default="fire_classifier")
    p.add_argument("--reports", type=Path,
                   help="an extra folder for plots and metrics (the run folder's reports/ always has them)")
    return p


def without(argv: list[str], valued: tuple[str, ...] = (), flags: tuple[str, ...] = ()) -> list[str]:
    """``argv`` without the options named: each of ``valued`` with its value (``--x V`` or ``--x=V``), each of
    ``flags`` alone. What a command records of itself leaves out where and until when it ran."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif arg not in flags and not any(arg.startswith(f"{name}=") for name in valued):
            kept.append(arg)
    return kept


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not 0.05 <= args.val_fraction <= 0.5:
        raise SystemExit("error: --val-fraction must be between 0.05 and 0.5")
    if args.trained and len(args.trained) > 1 and args.tta == "flip":
        raise SystemExit("error: --tta flip with several --trained fits: an ensemble is served without flip averaging")
    if args.resume and args.trained:
        raise SystemExit("error: --resume goes on with a fit stopped here; --trained takes one fitted elsewhere: give one")
    return args
