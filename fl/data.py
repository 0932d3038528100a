"""Image classification data sets for the FL tasks: the registry, and the shared loading.

A data set is a reader registered in :data:`DATASETS` (the built-in ones, ``mnist5k``,
``fashion-mnist``, ``mnist`` and ``gtsrb``, are in :mod:`fl.readers`); :func:`load_dataset` calls
the reader and returns normalised float tensors in memory (:class:`DatasetSplits`).

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

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from models.errors import InputError


__all__ = ["DATASETS", "DatasetSpec", "DatasetSplits", "RawSplits", "load_dataset", "register_dataset"]

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
        and ``gtsrb`` (see :mod:`fl.readers`).
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
