"""Extracts UPMC Food-101 / N24News features into mmjax's npz layout (mmjax/data/food_features.py).

For users who have the raw data and can run the two models (this is not part of the mmjax package
and needs torch, transformers and pillow, which mmjax does not depend on). Input is a CSV manifest
with a header and one row per sample::

    image,text,label,split
    images/train/apple_pie/apple_pie_0.jpg,"Apple pie recipe ...",apple_pie,train

- ``image``: path of the picture (relative paths are taken from the manifest's folder);
- ``text``: the sample's text (Food-101: the recipe page text of ``texts/{train,test}_titles.csv``;
  N24News: headline + abstract + caption + body joined with spaces, as the N24News authors do);
- ``label``: the class name (Food-101 folder / N24News section); classes are numbered in sorted
  order of the names found in the manifest, and the order is printed and saved as ``classes``;
- ``split``: ``train``, ``val`` or ``test``.

Output (``--out``, e.g. ``FOLDER/food101_features.npz``; give FOLDER to
``mmjax data prepare food101_features --from FOLDER``):

    image  float32 [N, 512]   CLIP ViT-B/32 ``get_image_features`` (openai/clip-vit-base-patch32)
    text   float32 [N, 1024]  BERT-large-uncased [CLS] last hidden state, first 512 tokens
    label  int32 [N], split int8 [N] (0 train, 1 val, 2 test), id str [N] (image file name),
    classes str [C]

Usage:
    python scripts/extract_food_features.py --manifest food101.csv \
        --out data/food101/food101_features.npz [--batch 64] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys

import numpy as np

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
CLIP = "openai/clip-vit-base-patch32"
BERT = "bert-large-uncased"


def read_manifest(path: pathlib.Path) -> tuple[list[dict], list[str]]:
    """The manifest's rows (image paths resolved) and the sorted class names.

    Raises:
      SystemExit: one line naming the manifest and the problem.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"{path}: cannot read the manifest ({e.strerror})")
    need = {"image", "text", "label", "split"}
    if not rows or not need <= set(rows[0]):
        sys.exit(f"{path}: the manifest needs a header with columns {sorted(need)}")
    for i, r in enumerate(rows):
        if r["split"] not in SPLIT_CODES:
            sys.exit(f"{path}: row {i + 2}: split must be train, val or test, got {r['split']!r}")
        image = pathlib.Path(r["image"])
        r["image"] = image if image.is_absolute() else path.parent / image
    return rows, sorted({r["label"] for r in rows})


def _require_models():
    """Imports torch, transformers and PIL, or exits with one line saying what to install."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from PIL import Image  # noqa: F401
    except ImportError as e:
        sys.exit(f"extract_food_features.py needs torch, transformers and pillow ({e.name} is "
                 "missing): pip install torch transformers pillow (not mmjax dependencies)")


def extract(rows: list[dict], batch: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """CLIP image and BERT-large [CLS] text features of every row, in order."""
    import torch
    from PIL import Image
    from transformers import AutoModel, AutoTokenizer, CLIPModel, CLIPProcessor

    clip, processor = CLIPModel.from_pretrained(CLIP).to(device).eval(), CLIPProcessor.from_pretrained(CLIP)
    bert, tokenizer = AutoModel.from_pretrained(BERT).to(device).eval(), AutoTokenizer.from_pretrained(BERT)
    images, texts = [], []
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            pics = [Image.open(r["image"]).convert("RGB") for r in chunk]
            pixel = processor(images=pics, return_tensors="pt")["pixel_values"].to(device)
            images.append(clip.get_image_features(pixel_values=pixel).float().cpu().numpy())
            tokens = tokenizer([r["text"] for r in chunk], truncation=True, max_length=512,
                               padding=True, return_tensors="pt").to(device)
            texts.append(bert(**tokens).last_hidden_state[:, 0].float().cpu().numpy())
            print(f"{min(start + batch, len(rows))}/{len(rows)}", end="\r", flush=True)
    return np.concatenate(images), np.concatenate(texts)


def main(argv=None) -> int:
    """Parses the arguments, extracts the features and writes the npz (temporary name, rename)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=pathlib.Path, required=True)
    p.add_argument("--out", type=pathlib.Path, required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    _require_models()
    rows, classes = read_manifest(args.manifest)
    image, text = extract(rows, args.batch, args.device)
    number = {c: i for i, c in enumerate(classes)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, image=image.astype(np.float32), text=text.astype(np.float32),
             label=np.array([number[r["label"]] for r in rows], np.int32),
             split=np.array([SPLIT_CODES[r["split"]] for r in rows], np.int8),
             id=np.array([pathlib.Path(r["image"]).name for r in rows]),
             classes=np.array(classes))
    tmp.replace(args.out)
    print(f"\nwrote {args.out}: {len(rows)} samples, {len(classes)} classes: {classes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
