"""Image folders decode what users have: 16-bit and float images scaled to 8 bits (not clipped to
white), split folders in any case (a val/ without a train/ refused), every class in both splits,
tiny images warned about, file names that are not UTF-8, and an unknown ``~user`` root. Real files
written by PIL (or, for 16-bit RGB, a PNG written byte by byte) into tmp_path, loaded through a
config composed by Hydra the way the CLI composes it."""

import logging
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import compose_search
from scalesearch.train import data as D
from scalesearch.train.data import load_data

SIDE = 24
GRADIENT = np.linspace(0, 65535, SIDE * SIDE).reshape(SIDE, SIDE).astype(np.uint16)  # every 16-bit level band


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    D._MEMORY_CACHE.clear()
    yield
    D._MEMORY_CACHE.clear()


def cfg(root, *overrides):
    """The dataset config the CLI would build from ``dataset=imagefolder dataset.root=<root> ...``."""
    return compose_search("dataset=imagefolder", f"dataset.root='{root}'", *overrides).dataset


def one_line_error(config, *needles) -> str:
    with pytest.raises(ValueError) as info:
        load_data(config)
    msg = str(info.value)
    assert "\n" not in msg and "allowed: " in msg, msg
    msg.encode("utf-8")  # printable as is: no lone surrogates from undecodable file names
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def noise(folder: Path, n: int, size=(16, 16), seed=0, prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")


def tree(root: Path, train=("a", "b"), val=("a", "b"), n_train=2, n_val=1, split_names=("train", "val"), **kw) -> Path:
    for j, c in enumerate(train):
        noise(root / split_names[0] / c, n_train, seed=j, **kw)
    for j, c in enumerate(val):
        noise(root / split_names[1] / c, n_val, seed=50 + j, **kw)
    return root


def png16_rgb(path: Path, rgb: np.ndarray):
    """A 16-bit-per-channel RGB PNG (PIL cannot write one): IHDR bit depth 16, colour type 2."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb)
    h, w = rgb.shape[:2]
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# how each kind of wide image is written, and the PIL mode it opens as
WIDE = {
    "png-16bit": ("png", "I;16", lambda p: Image.fromarray(GRADIENT).save(p)),
    "tiff-16bit-big-endian": ("tiff", "I;16B", lambda p: Image.fromarray(GRADIENT.astype(">u2")).save(p)),
    "pgm-16bit": ("pgm", "I", lambda p: Image.fromarray(GRADIENT).save(p)),
    "tiff-int32": ("tiff", "I", lambda p: Image.fromarray(GRADIENT.astype(np.int32)).save(p)),
    "tiff-float-0-1": ("tiff", "F", lambda p: Image.fromarray((GRADIENT / 65535).astype(np.float32)).save(p)),
    "tiff-float-0-65535": ("tiff", "F", lambda p: Image.fromarray(GRADIENT.astype(np.float32)).save(p)),
    "png-16bit-rgb": ("png", "RGB", lambda p: png16_rgb(p, np.stack([GRADIENT] * 3, -1))),
}


# ---------------------------------------------------------------- 1. 16-bit and float images
@pytest.mark.parametrize("kind", list(WIDE))
def test_wide_images_are_scaled_to_8_bits_not_clipped(tmp_path, kind):
    ext, mode, write = WIDE[kind]
    root = tmp_path / "ds"
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            write(root / split / c / f"g.{ext}")
    with Image.open(root / "train" / "a" / f"g.{ext}") as im:
        assert im.mode == mode
    d = load_data(cfg(root))
    expected = np.rint(GRADIENT / 257)  # the exact 16 → 8 bit map; before: mean 254.4, 99 % of pixels 255
    x = d.train_x[0].numpy().astype(float)
    assert d.train_x.shape == (2, 3, SIDE, SIDE)
    assert abs(x.mean() - expected.mean()) < 1, (x.mean(), expected.mean())
    assert np.abs(x - expected).max() <= 1 and (x == x[0]).all()  # grey: three equal channels


def test_8_bit_images_decode_as_before(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    for split in ("train", "val"):
        for c, mode in (("l", "L"), ("p", "P")):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(a).convert(mode).save(root / split / c / "x.png")
    d = load_data(cfg(root))
    assert (d.train_x[0].numpy() == a).all() and (d.train_x[1].numpy() == np.array(Image.fromarray(a).convert(
        "P").convert("RGB")).transpose(2, 0, 1)).all()


# ---------------------------------------------------------------- 2. split folders
@pytest.mark.parametrize("names", [("Train", "Val"), ("TRAIN", "Validation"), ("train", "Test"), ("Train", "VALID")])
def test_split_folders_in_any_case(tmp_path, names):
    d = load_data(cfg(tree(tmp_path / "ds", split_names=names)))
    assert d.classes == ["a", "b"] and len(d.train_y) == 4 and len(d.val_y) == 2


@pytest.mark.parametrize("layout", ["val", "Val", "test", "flat-with-Test"])
def test_validation_folder_without_training_folder_is_refused(tmp_path, layout):
    root = tmp_path / "ds"
    if layout == "flat-with-Test":  # root/<class>/... and a class-like Test/: never a class
        for j, c in enumerate(("cat", "dog", "Test")):
            noise(root / c, 3, seed=j)
        name = "Test"
    else:
        for j, c in enumerate(("cat", "dog")):
            noise(root / layout / c, 3, seed=j)
        name = layout
    one_line_error(cfg(root), f"dataset.root: {root} has a {name}/ folder but no train/ folder; allowed: "
                              f"root/train/<class>/<images> with root/{name}/<class>/<images>, or one tree")


def test_two_training_folders_differing_in_case_are_refused(tmp_path):
    root = tree(tmp_path / "ds")
    noise(root / "Train" / "a", 1)
    one_line_error(cfg(root), "has folders Train, train that differ only in case")


def test_flat_class_tree_still_splits_by_fraction(tmp_path):
    for j, c in enumerate(("x", "y")):
        noise(tmp_path / "ds" / c, 5, seed=j)
    d = load_data(cfg(tmp_path / "ds", "dataset.val_fraction=0.4"))
    assert d.classes == ["x", "y"] and d.train_y.bincount().tolist() == [3, 3] and d.val_y.bincount().tolist() == [2, 2]


# ---------------------------------------------------------------- 3. every class in both splits
def test_class_missing_from_the_validation_split(tmp_path):
    root = tree(tmp_path / "ds", train=("a", "b", "c"))
    one_line_error(cfg(root), "class 'c' has 0 validation images (no folder", str(root / "val" / "c"))


def test_class_missing_from_the_training_split(tmp_path):
    root = tree(tmp_path / "ds", val=("a", "b", "c"))
    one_line_error(cfg(root), str(root / "val" / "c"), "not among the training classes",
                   "class 'c' has 0 training images")


@pytest.mark.parametrize("split, what", [("val", "validation"), ("train", "training")])
@pytest.mark.parametrize("content", ["empty", "only-non-images"])
def test_class_folder_empty_in_one_split(tmp_path, split, what, content):
    root = tree(tmp_path / "ds")
    (root / split / "c").mkdir()
    noise(root / {"val": "train", "train": "val"}[split] / "c", 2)
    if content == "only-non-images":
        (root / split / "c" / "notes.txt").write_text("no image\n")
        (root / split / "c" / "labels.csv").write_text("x,y\n")
    one_line_error(cfg(root), f"class folder {root / split / 'c'} holds no images",
                   f"class 'c' has 0 {what} images")


def test_single_image_class_in_a_flat_tree_leaves_no_training_image(tmp_path):
    root = tmp_path / "ds"
    noise(root / "a", 5)
    noise(root / "b", 5, seed=1)
    noise(root / "c", 1, seed=2)  # its only image is held out
    one_line_error(cfg(root), "class 'c' has 0 training and 1 validation images once the single tree",
                   "dataset.val_fraction=0.2", "lower val_fraction")


def test_class_left_empty_by_skip_corrupt(tmp_path):
    root = tree(tmp_path / "ds", train=("a", "b", "c"), val=("a", "b"))
    (root / "val" / "c").mkdir()
    (root / "val" / "c" / "broken.png").write_bytes(b"no PNG at all")
    one_line_error(cfg(root), "unreadable or corrupt image", "broken.png", "skip_corrupt=true")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        one_line_error(cfg(root, "dataset.skip_corrupt=true"), "class 'c' has 2 training and 0 validation images "
                       "once unreadable images are skipped (dataset.skip_corrupt=true)")


# ---------------------------------------------------------------- 4. tiny images
def small_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "are smaller than" in r.getMessage()]


def test_tiny_images_warn_once_with_count_and_sizes(tmp_path, caplog):
    root = tree(tmp_path / "ds", n_train=3, n_val=2, size=(1, 1))
    with caplog.at_level(logging.WARNING, logger="scalesearch"):
        d = load_data(cfg(root, "dataset.disk_cache=true"))
        assert load_data(cfg(root, "dataset.disk_cache=true")) is d  # the process cache: no second warning
    assert d.train_x.shape == (6, 3, 1, 1)
    assert small_warnings(caplog) == [(
        "10 of 10 images are smaller than 16 px, 1/2 of dataset.base_resolution=32 (1×1); they are upscaled to 32 px "
        "and more for training, so the proxy learns from interpolated pixels (use larger images, or a smaller "
        "dataset.base_resolution, >= 16)")]
    caplog.clear()
    D._MEMORY_CACHE.clear()
    with caplog.at_level(logging.WARNING, logger="scalesearch"):
        load_data(cfg(root, "dataset.disk_cache=true"))  # from the disk cache: still said
    assert len(small_warnings(caplog)) == 1


def test_mostly_small_images_name_the_commonest_sizes(tmp_path, caplog):
    root = tree(tmp_path / "ds", n_train=3, n_val=2, size=(6, 4))
    noise(root / "train" / "a", 1, size=(64, 64), prefix="big")
    noise(root / "val" / "b", 1, size=(9, 30), prefix="tall")
    with caplog.at_level(logging.WARNING, logger="scalesearch"):
        load_data(cfg(root, "dataset.base_resolution=20"))
    (msg,) = small_warnings(caplog)
    assert msg.startswith("11 of 12 images are smaller than 10 px, 1/2 of dataset.base_resolution=20 (6×4, 9×30); ")


def test_images_near_the_base_resolution_do_not_warn(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="scalesearch"):
        load_data(cfg(tree(tmp_path / "ds", size=(16, 16))))  # 16 px at base 32: half of it, not below
    assert small_warnings(caplog) == []


# ---------------------------------------------------------------- 5. file names that are not UTF-8
def undecodable(folder: Path, raw: bytes, image=True) -> Path:
    """``folder/<raw bytes>``: a file (an image when ``image``) or, if not, a folder; skipped where
    the file system refuses the name."""
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + raw))  # Python keeps undecodable bytes as surrogates
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if image:
            Image.fromarray(np.full((16, 16, 3), 7, np.uint8)).save(path, format="PNG")
        else:
            path.mkdir()
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses file names that are not UTF-8")
    return path


def test_non_utf8_file_name_loads(tmp_path):
    root = tree(tmp_path / "ds")
    undecodable(root / "train" / "a", b"\xff\xfe.png")
    d = load_data(cfg(root, "dataset.disk_cache=true"))  # the disk cache key hashes the name's bytes
    assert len(d.train_y) == 5 and (d.train_x == 7).all(dim=(1, 2, 3)).sum() == 1


def test_non_utf8_corrupt_file_is_named(tmp_path):
    root = tree(tmp_path / "ds")
    undecodable(root / "val" / "b", b"bad\xff.jpg").write_bytes(b"no JPEG")
    one_line_error(cfg(root), "unreadable or corrupt image", str(root / "val" / "b") + "/bad\\xff.jpg")


def test_non_utf8_class_folder_is_a_printable_class_name(tmp_path):
    root = tree(tmp_path / "ds")
    for split in ("train", "val"):
        undecodable(undecodable(root / split, b"caf\xe9", image=False), b"\xe9t\xe9.png")  # Latin-1 bytes
    d = load_data(cfg(root))
    assert d.classes == ["a", "b", "caf\\xe9"] and d.val_y.bincount().tolist() == [1, 1, 1]


# ---------------------------------------------------------------- 6. an unknown ~user
@pytest.mark.parametrize("dataset", ["imagefolder", "cifar10"])
def test_unknown_user_home_is_one_line(dataset):
    config = compose_search(f"dataset={dataset}", "dataset.root='~nosuchuser4711/x'").dataset
    one_line_error(config, "dataset.root='~nosuchuser4711/x'", "'~nosuchuser4711' is unknown",
                   "allowed: an absolute or relative path, ~/<path>, or ~<existing user>/<path>")
