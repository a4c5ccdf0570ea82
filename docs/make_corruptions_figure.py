"""Draw docs/corruptions.png: one digits test image, clean and under all 19 corruptions x 5 severities.

    python docs/make_corruptions_figure.py [--index 3] [--out docs/corruptions.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from compute import corruptions, datasets  # noqa: E402
from store import vocabulary

TILE = 64  # pixels per image (32x32 scaled by 2, nearest neighbour)
GAP = 4
LABEL_WIDTH = 130
HEADER = 20


def figure(image: np.ndarray, sample_id: int, seed: int = 0) -> Image.Image:
    """A grid: one row per corruption, the clean image then severities 1-5."""
    columns = 1 + len(vocabulary.SEVERITIES)
    width = LABEL_WIDTH + columns * (TILE + GAP)
    height = HEADER + len(corruptions.NAMES) * (TILE + GAP)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(["clean", *(f"severity {s}" for s in vocabulary.SEVERITIES)]):
        draw.text((LABEL_WIDTH + column * (TILE + GAP) + 4, 4), title, fill="black")
    clean = Image.fromarray(image).resize((TILE, TILE), Image.NEAREST)
    for row, name in enumerate(corruptions.NAMES):
        top = HEADER + row * (TILE + GAP)
        draw.text((4, top + TILE // 2 - 6), name, fill="black")
        canvas.paste(clean, (LABEL_WIDTH, top))
        for severity in vocabulary.SEVERITIES:
            corrupted = corruptions.corrupt(image[None], name, severity, seed=seed, sample_ids=[sample_id])[0]
            tile = Image.fromarray(corrupted).resize((TILE, TILE), Image.NEAREST)
            canvas.paste(tile, (LABEL_WIDTH + severity * (TILE + GAP), top))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=int, default=3, help="digits test image (sample id) to show (default 3, a 5)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("corruptions.png")))
    args = parser.parse_args()
    images = datasets.load("digits").test.images
    figure(images[args.index], args.index).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
