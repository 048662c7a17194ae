"""Bad dataset input ends in one clear line: a ValueError whose message is a single line naming the
value and what is allowed (the CLI prints its first line), never a traceback; and a validation split
too small to measure an accuracy on is warned about. Real files only: PIL-written images, real
tar/zip archives (truncated or damaged by hand)."""

import io
import os
import re
import shutil
import tarfile
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import TINY, run_cli
from scalesearch.train import data as D
from scalesearch.config import DatasetConfig
from scalesearch.train.data import accuracy_half_width, load_data


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """A fresh process cache, and archives extracted under tmp_path (never ~/.cache)."""
    monkeypatch.setenv("SCALESEARCH_CACHE", str(tmp_path / "cache"))
    D._MEMORY_CACHE.clear()
    yield
    D._MEMORY_CACHE.clear()


def write_images(folder: Path, n: int, size=(32, 32), fmt="png", seed=0):
    """``n`` real image files of random noise (incompressible: archives of them are not tiny)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img{i:03d}.{fmt}")


def make_tree(root: Path, classes=("cat", "dog"), n_train=6, n_val=3) -> Path:
    for j, c in enumerate(classes):
        write_images(root / "train" / c, n_train, seed=j)
        write_images(root / "val" / c, n_val, seed=100 + j)
    return root


def folder_cfg(root, **kw) -> DatasetConfig:
    return DatasetConfig(name="imagefolder", root=str(root), **kw)


def one_line_error(cfg, *needles) -> str:
    """The ValueError load_data raises for ``cfg``: one line, naming ``needles``, saying what is allowed."""
    with pytest.raises(ValueError) as info:
        load_data(cfg)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    assert "allowed" in msg, msg
    for n in needles:
        assert str(n) in msg, f"{n!r} not in {msg!r}"
    return msg


def cache_entries(tmp_path) -> list[Path]:
    archives = tmp_path / "cache" / "archives"
    return list(archives.iterdir()) if archives.exists() else []


def archive_of_tree(tmp_path, mode: str) -> Path:
    """A real archive (tarfile mode ``w:gz``/``w:bz2``/``w:xz``/``w``, or ``zip``) of a small tree."""
    make_tree(tmp_path / "src" / "pets")
    if mode == "zip":
        path = tmp_path / "pets.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted((tmp_path / "src").rglob("*")):
                z.write(p, p.relative_to(tmp_path / "src"))
        return path
    path = tmp_path / ("pets.tar" + {"w": "", "w:gz": ".gz", "w:bz2": ".bz2", "w:xz": ".xz"}[mode])
    with tarfile.open(path, mode) as tar:
        tar.add(tmp_path / "src" / "pets", arcname="pets")
    return path


def truncate(path: Path, fraction=0.3) -> Path:
    b = path.read_bytes()
    path.write_bytes(b[: int(len(b) * fraction)])
    return path


# ---------------------------------------------------------------- 1. truncated or corrupt archives
@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_truncated_tar_archive_is_one_line_and_leaves_nothing(tmp_path, mode):
    archive = truncate(archive_of_tree(tmp_path, mode))
    msg = one_line_error(folder_cfg(archive), f"dataset.root={str(archive)!r}", "truncated or corrupt archive",
                         ".tar.gz", ".zip")
    assert msg.endswith("of an image folder"), msg
    assert cache_entries(tmp_path) == []  # the partial extraction is gone, nothing was renamed into place


def test_corrupt_zip_member_is_one_line(tmp_path):
    archive = archive_of_tree(tmp_path, "zip")
    b = bytearray(archive.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(b))) as z:  # damage the first image's compressed bytes
        info = next(i for i in z.infolist() if i.filename.endswith(".png"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 20, start + 60):
        b[i] ^= 0xFF
    archive.write_bytes(bytes(b))
    one_line_error(folder_cfg(archive), str(archive), "truncated or corrupt archive")
    assert cache_entries(tmp_path) == []


def test_truncated_zip_is_one_line(tmp_path):
    archive = truncate(archive_of_tree(tmp_path, "zip"))  # the central directory is cut off
    one_line_error(folder_cfg(archive), str(archive), "truncated or corrupt archive (zip data")
    assert cache_entries(tmp_path) == []


# ---------------------------------------------------------------- 2. a plain file as root
@pytest.mark.parametrize("name", ["x.jpg", "notes.txt"])
def test_plain_file_root_is_called_a_file(tmp_path, name):
    path = tmp_path / name
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="JPEG")
    msg = one_line_error(folder_cfg(path), f"dataset.root={str(path)!r} is a file, not an image-folder directory "
                                           "or an archive (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip)")
    assert "does not exist" not in msg


# ---------------------------------------------------------------- 3. random bytes named like an archive
@pytest.mark.parametrize("name", ["random.zip", "random.tar.gz", "empty.tar"])
def test_random_bytes_archive_is_one_complete_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
                     if not name.startswith("empty") else b"")
    msg = one_line_error(folder_cfg(path), str(path), "is not a readable tar or zip archive")
    assert msg.endswith("of an image folder"), msg  # complete, not cut mid-sentence
    assert cache_entries(tmp_path) == []


# ---------------------------------------------------------------- 4. a tiny validation split
def test_accuracy_half_width():
    assert accuracy_half_width(100) == pytest.approx(0.098)
    assert accuracy_half_width(8) == pytest.approx(1.96 * (0.25 / 8) ** 0.5)
    assert accuracy_half_width(400, p=0.9) == pytest.approx(1.96 * 0.3 / 20)
    assert accuracy_half_width(100, level_z=2.576) == pytest.approx(0.1288)
    assert accuracy_half_width(384) > 0.05 > accuracy_half_width(385)  # where the warning stops
    assert accuracy_half_width(0) == float("inf")
    with pytest.raises(ValueError, match="p=1.5; allowed"):
        accuracy_half_width(10, p=1.5)


def test_tiny_validation_split_warns_once_per_load(tmp_path, caplog):
    root = tmp_path / "ds"
    for j, c in enumerate(["a", "b"]):
        write_images(root / "train" / c, 5, seed=j)
        write_images(root / "test" / c, 2, size=(40, 30), fmt="jpg", seed=10 + j)  # mixed sizes, 8 in all
        write_images(root / "test" / c, 2, size=(20, 20), fmt="png", seed=20 + j)
        os.rename(root / "test" / c / "img000.png", root / "test" / c / "small0.png")
        os.rename(root / "test" / c / "img001.png", root / "test" / c / "small1.png")
    cfg = folder_cfg(root)
    hw = f"±{1.96 * (0.25 / 8) ** 0.5:.3f}"
    with caplog.at_level("WARNING", logger="scalesearch"):
        d = load_data(cfg)
    assert len(d.val_y) == 8
    ours = [r.getMessage() for r in caplog.records if "validation split" in r.getMessage()]
    assert ours == [f"validation split has 8 images: an accuracy measured on it is uncertain by up to {hw} (95 %); "
                    "allowed: more validation images (val_per_class, val_fraction, val_size, or a larger val/ folder)"]
    caplog.clear()
    with warnings.catch_warnings(record=True) as again:  # a cache hit: no second warning
        warnings.simplefilter("always")
        assert load_data(cfg) is d
    assert not [w for w in again if "validation split" in str(w.message)]
    assert not [r for r in caplog.records if "validation split" in r.getMessage()]


def test_large_enough_validation_split_does_not_warn(caplog):
    cfg = DatasetConfig(image_size=16, train_size=20, val_size=400, num_classes=2)
    with caplog.at_level("WARNING", logger="scalesearch"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert len(load_data(cfg).val_y) == 400
    assert not [w for w in record if "validation split" in str(w.message)]
    assert not [r for r in caplog.records if "validation split" in r.getMessage()]
    D._MEMORY_CACHE.clear()
    with caplog.at_level("WARNING", logger="scalesearch"):
        load_data(replace(cfg, val_size=100))  # every dataset kind is checked, synthetic too
    assert any(re.search(r"validation split has 100 images: .* up to ±0\.098 \(95 %\)", r.getMessage())
               for r in caplog.records)


# ---------------------------------------------------------------- 5. other bad input
def test_unreadable_directory_is_one_line(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "ds")
    locked = root / "train"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # running as root, which ignores modes: have the OS refuse anyway
            real = Path.iterdir

            def iterdir(self):
                if self == locked:
                    raise PermissionError(13, "Permission denied", str(self))
                return real(self)

            monkeypatch.setattr(Path, "iterdir", iterdir)
        one_line_error(folder_cfg(root), f"dataset.root={str(root)!r}", "Permission denied", str(locked))
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("setting, value", [("train_per_class", 0), ("val_per_class", -1), ("cache_resolution", 0)])
def test_caps_below_one(tmp_path, setting, value):
    one_line_error(folder_cfg(make_tree(tmp_path / "ds"), **{setting: value}), f"dataset.{setting}={value}", ">= 1")


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_val_fraction_out_of_range(tmp_path, fraction):
    for j, c in enumerate(["x", "y"]):
        write_images(tmp_path / "ds" / c, 4, seed=j)
    one_line_error(folder_cfg(tmp_path / "ds", val_fraction=fraction), f"dataset.val_fraction={fraction}",
                   "0 < val_fraction < 1")


def test_class_folder_without_images(tmp_path):
    root = make_tree(tmp_path / "ds")
    (root / "train" / "notes").mkdir()
    (root / "train" / "notes" / "readme.txt").write_text("no images here\n")
    one_line_error(folder_cfg(root), "dataset.root", str(root / "train" / "notes"), "holds no images")


def test_no_readable_image_at_all(tmp_path):
    root = tmp_path / "ds"
    for c in ["a", "b"]:
        (root / c).mkdir(parents=True)
        for i in range(3):
            (root / c / f"fake{i}.jpg").write_bytes(b"not a jpeg" * 20)
    one_line_error(folder_cfg(root), "dataset.root", "fake0.jpg")  # names the first, suggests skip_corrupt
    one_line_error(folder_cfg(root, skip_corrupt=True), "none of the 6 images could be read")


def test_every_validation_image_unreadable(tmp_path):
    root = make_tree(tmp_path / "ds")
    for p in (root / "val").rglob("*.png"):
        p.write_bytes(b"broken")
    with pytest.warns(UserWarning, match="skipped 6 unreadable"):
        one_line_error(folder_cfg(root, skip_corrupt=True), "0 validation images", "at least one of each")


@pytest.mark.parametrize("fmt", ["gztar", "zip"])
def test_empty_archive(tmp_path, fmt):
    (tmp_path / "nothing").mkdir()
    archive = Path(shutil.make_archive(str(tmp_path / "empty"), fmt, root_dir=tmp_path / "nothing"))
    one_line_error(folder_cfg(archive), f"dataset.root={str(archive)!r} is an empty archive")
    assert cache_entries(tmp_path) == []


def test_damaged_disk_cache_is_decoded_again(tmp_path):
    root = make_tree(tmp_path / "ds")
    first = load_data(folder_cfg(root, disk_cache=True))
    (cache_file,) = (root / ".scalesearch_cache").glob("*.pt")
    cache_file.write_bytes(b"garbage")
    D._MEMORY_CACHE.clear()
    with pytest.warns(UserWarning, match="ignored the unreadable decoded-image cache"):
        again = load_data(folder_cfg(root, disk_cache=True))
    assert again.fingerprint == first.fingerprint
    assert cache_file.stat().st_size > 100  # rewritten


# ---------------------------------------------------------------- the CLI
def test_cli_truncated_archive_is_one_line_exit_2(tmp_path):
    archive = truncate(archive_of_tree(tmp_path, "w:gz"))
    rc, out, err = run_cli("search_main", *TINY, "dataset=imagefolder", f"dataset.root={archive}",
                           f"hydra.run.dir={tmp_path / 'run'}", env={"SCALESEARCH_CACHE": str(tmp_path / "cache")})
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("scalesearch: error:")]
    assert len(errors) == 1, err[-3000:]
    assert "truncated or corrupt archive" in errors[0] and str(archive) in errors[0], errors[0]
    assert errors[0].endswith("of an image folder"), errors[0]
    assert cache_entries(tmp_path) == []
