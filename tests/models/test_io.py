"""models.io: atomic writes leave either the old file or the new one, never half of one."""
import json
import os
import stat

import numpy as np
import pytest

from models.io import atomic_save, atomic_write_json, to_jsonable
from models.scenario import Mechanism


def test_json_round_trip_of_numpy_and_enums(tmp_path):
    # Prepare
    obj = {"a": np.arange(3), "b": np.float64(1.5), "m": Mechanism.UNIT_PRICE, "nan": float("nan")}
    # Execute
    path = atomic_write_json(tmp_path / "out" / "r.json", obj)
    # Assert
    assert json.loads(path.read_text()) == {"a": [0, 1, 2], "b": 1.5, "m": "unit_price", "nan": None}


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    # Prepare
    target = tmp_path / "r.json"
    atomic_write_json(target, {"v": 1})

    def broken(tmp):
        with open(tmp, "w") as fh:
            fh.write('{"v": 2, "half')
        raise RuntimeError("disk full")

    # Execute
    with pytest.raises(RuntimeError):
        atomic_save(target, broken)
    # Assert
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "r.json", {"v": 1})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_to_jsonable_nested():
    assert to_jsonable({"x": (np.int64(2), [np.array([[1.0]])])}) == {"x": [2, [[[1.0]]]]}
