"""Quantize a trained model to int8 and save it as a checkpoint derived from its base.

Post-training static quantization of the feature extractor (compute/quantize.py): per-channel int8
weights, activation ranges calibrated on --calibration training images of --dataset, the final linear
layer kept in float so the geometry is computed from the dequantized features. The base may itself be
pruned (channel, nm, any method): the chain is recorded, and the store shows both bases. The quantized
model runs on CPU only, and so does this command.

Examples:
    python -m compute quantize --base runs/dense.pt --method int8 --out runs/dense-int8.pt
    python -m compute quantize --base runs/channel-50.pt --method int8 --out runs/channel-50-int8.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compute import checkpoint, datasets, quantize
from compute.commands._common import add_dataset_arguments, dataset_options, positive_int
from compute.identity import derived_id
from compute.runners import quantize_model, quantize_record

HELP = "quantize a model's feature extractor to int8 (static, calibrated on training images; CPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument("--base", required=True, metavar="CKPT",
                        help="prunescope checkpoint to quantize (dense, or pruned by any method)")
    parser.add_argument("--method", default="int8", choices=quantize.METHODS,
                        help="int8: post-training static quantization, per-channel weights (default)")
    parser.add_argument("--calibration", type=positive_int, default=quantize.CALIBRATION, metavar="N",
                        help=f"training images that calibrate the activation ranges (default {quantize.CALIBRATION})")
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    parser.add_argument("--model-id", default=None, help="id in the store (default: the base's id with -<method> before its seed, "
                        "small_cnn-channel-50-int8-s0)")


def run(args: argparse.Namespace) -> int:
    meta = checkpoint.read(args.base)
    data = datasets.load(args.dataset, args.data_dir, args.download, **dataset_options(args))
    if meta.get("dataset") not in (None, data.name):
        raise ValueError(f"--base {args.base} was trained on {meta['dataset']!r}; calibrate it on that dataset, "
                         f"not --dataset {args.dataset}")
    name = args.model_id or derived_id(meta.get("hparams", {}).get("model_id") or Path(args.base).stem, args.method)
    record = quantize_record(Path(args.base), args.method, args.calibration)
    results = quantize_model(record, name, Path(args.base), Path(args.out), data)
    print(f"{name}: test accuracy {results['test_accuracy']:.4f} (CPU) -> {args.out}")
    return 0
