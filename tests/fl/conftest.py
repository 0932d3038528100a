"""Shared fixtures of tests/fl: data sets written in torchvision's on-disk layouts."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fl.readers import GTSRB_NUM_CLASSES


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """An unsigned-byte IDX file: magic 0x0000 08 <ndim>, big-endian sizes, bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) \
        + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_mnist_folder(folder: Path, n_train: int, n_test: int, seed: int, gz: bool = False):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{split}-images-idx3-ubyte", x, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte", y, gz)
        data[split] = (x, y)
    return data


def write_gtsrb(root: Path, per_class: int = 1, n_test: int = 5, classes=None,
                test_classes=None) -> dict[str, list[int]]:
    """torchvision's GTSRB layout with tiny PPM images of varying sizes.

    ``classes``: the training class folders written (default all 43); ``test_classes``: the
    ``ClassId`` cycle of the test rows (default ``7 k mod 43``).
    """
    rng = np.random.default_rng(0)
    base = root / "gtsrb"
    labels: dict[str, list[int]] = {"train": [], "test": []}
    for c in (range(GTSRB_NUM_CLASSES) if classes is None else classes):
        folder = base / "GTSRB" / "Training" / f"{c:05d}"
        folder.mkdir(parents=True)
        rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
        for k in range(per_class):
            side = int(rng.integers(15, 40))
            img = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
            name = f"00000_{k:05d}.ppm"
            Image.fromarray(img).save(folder / name)
            rows.append(f"{name};{side};{side};1;1;{side - 1};{side - 1};{c}")
            labels["train"].append(c)
        (folder / f"GT-{c:05d}.csv").write_text("\n".join(rows) + "\n")
    images = base / "GTSRB" / "Final_Test" / "Images"
    images.mkdir(parents=True)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for k in range(n_test):
        img = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
        name = f"{k:05d}.ppm"
        Image.fromarray(img).save(images / name)
        c = (7 * k) % GTSRB_NUM_CLASSES if test_classes is None else test_classes[k % len(test_classes)]
        rows.append(f"{name};24;20;1;1;23;19;{c}")
        labels["test"].append(c)
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return labels


@pytest.fixture


def mnist_writer():
    """``write(folder, n_train, n_test, seed, gz=False)``: the four MNIST IDX files."""
    return write_mnist_folder


@pytest.fixture


def gtsrb_writer():
    """``write(root, per_class=1, n_test=5)``: torchvision's GTSRB tree with tiny PPMs."""
    return write_gtsrb
