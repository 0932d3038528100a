"""fl/data.py: data sets in torchvision's on-disk layouts, written for real into tmp_path."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from fl.data import DATASETS, DatasetSplits, load_dataset
from fl.readers import FASHION_MNIST_DEBIAN_DIR, GTSRB_NUM_CLASSES, read_idx
from models.errors import InputError

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def test_mnist5k_has_5000_real_digits_in_a_stratified_split():
    # Execute
    ds = load_dataset("mnist5k")
    # Assert
    assert isinstance(ds, DatasetSplits)
    assert (ds.n_train, ds.n_test) == (4000, 1000)
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert torch.equal(torch.bincount(ds.train_y), torch.full((10,), 400))
    assert torch.equal(torch.bincount(ds.test_y), torch.full((10,), 100))
    # real digits: MNIST's pixel mean is about 0.13 with a std of about 0.31
    assert ds.mean[0] == pytest.approx(0.1307, abs=0.01)
    assert ds.std[0] == pytest.approx(0.3081, abs=0.01)
    assert float(ds.train_x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(ds.train_x.std()) == pytest.approx(1.0, abs=1e-3)
    # no test digit is also a training digit
    train_rows = {bytes(r) for r in ds.train_x.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in ds.test_x.flatten(1).numpy())


def test_mnist5k_is_cached_and_reproducible():
    first = load_dataset("mnist5k")
    second = load_dataset("mnist5k")
    assert first is second


@pytest.mark.parametrize("gz", [False, True])


def test_fashion_mnist_from_an_idx_folder(tmp_path, mnist_writer, gz):
    # Prepare
    data = mnist_writer(tmp_path, n_train=30, n_test=20, seed=1, gz=gz)
    # Execute
    ds = load_dataset("fashion-mnist", root=tmp_path)
    # Assert: pixels survive decoding and standardisation exactly
    raw = data["train"][0].astype(np.float32) / 255.0
    assert ds.mean[0] == pytest.approx(raw.mean(), rel=1e-6)
    restored = ds.train_x[:, 0].numpy() * ds.std[0] + ds.mean[0]
    np.testing.assert_allclose(restored, raw, atol=1e-6)
    np.testing.assert_array_equal(ds.test_y.numpy(), data["t10k"][1])
    assert (ds.n_train, ds.n_test, ds.shape) == (30, 20, (1, 28, 28))


@pytest.mark.skipif(not (FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"Debian's dataset-fashion-mnist is not installed "
                           f"({FASHION_MNIST_DEBIAN_DIR} absent)")


def test_fashion_mnist_from_the_debian_folder():
    ds = load_dataset("fashion-mnist")
    assert (ds.n_train, ds.n_test, ds.num_classes) == (60000, 10000, 10)
    assert torch.equal(torch.bincount(ds.train_y), torch.full((10,), 6000))


def test_mnist_read_through_torchvision_layout(tmp_path, mnist_writer):
    # Prepare
    data = mnist_writer(tmp_path / "MNIST" / "raw", n_train=25, n_test=15, seed=2)
    # Execute
    ds = load_dataset("mnist", root=tmp_path)
    # Assert
    np.testing.assert_array_equal(ds.train_y.numpy(), data["train"][1])
    restored = ds.test_x[:, 0].numpy() * ds.std[0] + ds.mean[0]
    np.testing.assert_allclose(restored, data["t10k"][0] / 255.0, atol=1e-6)


@pytest.mark.parametrize("missing", IDX_STEMS)


def test_mnist_missing_file_is_named(tmp_path, mnist_writer, missing):
    # Prepare
    raw = tmp_path / "MNIST" / "raw"
    mnist_writer(raw, n_train=5, n_test=5, seed=3)
    (raw / missing).unlink()
    # Execute / Assert
    with pytest.raises(InputError) as err:
        load_dataset("mnist", root=tmp_path)
    assert err.value.field == "root"
    assert str(raw / missing) in str(err.value)
    assert "MNIST database" in str(err.value)


@pytest.mark.parametrize("missing", IDX_STEMS)


def test_fashion_missing_file_is_named(tmp_path, mnist_writer, missing):
    mnist_writer(tmp_path, n_train=5, n_test=5, seed=4)
    (tmp_path / missing).unlink()
    with pytest.raises(InputError, match=missing):
        load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.parametrize("magic", [b"\x00\x00\x0d\x03", b"\x08\x03\x00\x00"])


def test_bad_idx_magic_is_rejected(tmp_path, magic):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(magic + struct.pack(">3I", 1, 2, 2) + bytes(4))
    with pytest.raises(InputError, match="magic"):
        read_idx(path)


def test_truncated_idx_is_rejected(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(struct.pack(">BBBB3I", 0, 0, 8, 3, 2, 28, 28) + bytes(100))
    with pytest.raises(InputError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize("size", [None, 16])


def test_gtsrb_read_through_torchvision_layout(tmp_path, gtsrb_writer, size):
    # Prepare
    labels = gtsrb_writer(tmp_path, per_class=2, n_test=6)
    # Execute
    ds = load_dataset("gtsrb", root=tmp_path, image_size=size)
    # Assert
    side = 32 if size is None else size
    assert ds.shape == (3, side, side) and ds.num_classes == GTSRB_NUM_CLASSES
    assert sorted(ds.train_y.tolist()) == sorted(labels["train"])
    assert ds.test_y.tolist() == labels["test"]
    assert len(ds.mean) == 3
    assert float(ds.train_x.mean()) == pytest.approx(0.0, abs=1e-4)


def test_gtsrb_some_class_folders_as_torchvision_reads_them(tmp_path, gtsrb_writer):
    # Prepare: 3 of the 43 training folders; the test CSV names one class without a folder
    gtsrb_writer(tmp_path, per_class=2, n_test=4, classes=[4, 17, 30], test_classes=[17, 4, 9, 30])
    # Execute
    ds = load_dataset("gtsrb", root=tmp_path, image_size=8)
    # Assert: the classes are the union of the folders and the test CSV, labelled in order
    assert ds.classes == (4, 9, 17, 30) and ds.num_classes == 4
    assert sorted(ds.train_y.tolist()) == [0, 0, 2, 2, 3, 3]
    assert ds.test_y.tolist() == [2, 0, 1, 3]


def test_gtsrb_full_folder_keeps_class_numbers(tmp_path, gtsrb_writer):
    gtsrb_writer(tmp_path, per_class=1, n_test=3)
    ds = load_dataset("gtsrb", root=tmp_path, image_size=8)
    assert ds.classes == tuple(range(GTSRB_NUM_CLASSES))


@pytest.mark.parametrize("setup, named", [
    ("empty_class", "no .ppm image in"),
    ("no_classes", "no class folder"),
    ("bad_name", "not a GTSRB class folder"),
])
def test_gtsrb_unusable_training_folder_is_named(tmp_path, gtsrb_writer, setup, named):
    # Prepare
    import shutil

    gtsrb_writer(tmp_path, per_class=1, n_test=2, classes=[0, 1])
    training = tmp_path / "gtsrb" / "GTSRB" / "Training"
    if setup == "empty_class":
        (training / "00005").mkdir()
    elif setup == "no_classes":
        for d in training.iterdir():
            shutil.rmtree(d)
    else:
        (training / "signs").mkdir()
    # Execute / Assert
    with pytest.raises(InputError, match=named):
        load_dataset("gtsrb", root=tmp_path)


@pytest.mark.parametrize("remove, named", [
    ("gtsrb/GTSRB/Training", "Training"),
    ("gtsrb/GT-final_test.csv", "GT-final_test.csv"),
    ("gtsrb/GTSRB/Final_Test/Images/00003.ppm", "Images/00003.ppm"),
    ("gtsrb/GTSRB/Final_Test", "Final_Test/Images"),
])


def test_gtsrb_missing_piece_is_named(tmp_path, gtsrb_writer, remove, named):
    # Prepare
    import shutil

    gtsrb_writer(tmp_path, per_class=1, n_test=5)
    target = tmp_path / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    # Execute / Assert
    with pytest.raises(InputError) as err:
        load_dataset("gtsrb", root=tmp_path)
    assert named in str(err.value) and "GTSRB" in str(err.value)


@pytest.mark.parametrize("name, root", [("mnist", None), ("gtsrb", None)])


def test_folder_required(name, root):
    with pytest.raises(InputError, match="root"):
        load_dataset(name, root=root)


def test_unknown_name_lists_the_names():
    with pytest.raises(InputError) as err:
        load_dataset("cifar-10")
    assert err.value.field == "dataset"
    assert all(n in str(err.value) for n in DATASETS)


@pytest.mark.parametrize("size", [0, 3.5, True, 1000])


def test_bad_image_size(size):
    with pytest.raises(InputError, match="image_size"):
        load_dataset("mnist5k", image_size=size)


def test_mnist5k_resized():
    ds = load_dataset("mnist5k", image_size=14)
    assert ds.shape == (1, 14, 14) and ds.n_train == 4000
