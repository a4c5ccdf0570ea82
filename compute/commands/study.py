"""Run a pruning study from a TOML file: train the dense model(s) and every method x sparsity x seed of the
zoo, then extract per-sample geometry on clean and corrupted test images into a store.

Resumable: a checkpoint in <out>/checkpoints is named by the digest of its training record and is not
trained again while that record is unchanged; after an edit of the study file, exactly the models whose
record changed are trained and extracted again, and the run prints which. Complete store partitions are
skipped. The file format is in docs/pruning.md; studies/ holds examples.

Example:
    python -m compute study studies/digits.toml --out data/digits-study
    streamlit run dashboard/app.py -- --store data/digits-study
"""

from __future__ import annotations

import argparse

from compute import device as devices
from compute import study, study_file
from compute.commands._common import add_device_argument

HELP = "train a pruning zoo from a study file and extract it into a store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device_argument(parser)
    parser.add_argument("file", help="study file (TOML), e.g. studies/digits.toml")
    parser.add_argument("--out", required=True, help="store directory; checkpoints go to <out>/checkpoints")
    parser.add_argument("--train-only", action="store_true", help="train the checkpoints, do not extract")


def run(args: argparse.Namespace) -> int:
    plan = study_file.Study.from_toml(args.file)
    timings = study.run(plan, args.out, devices.pick(args.device), extract_store=not args.train_only)
    phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in timings.items())
    print(f"study {args.file} done in {args.out} ({phases})")
    return 0
