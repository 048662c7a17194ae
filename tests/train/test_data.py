"""Datasets: the registry, the synthetic set, image folders of real image files, torchvision
datasets from local files, the disk cache, bad input, and the on-device batch transforms."""

import os
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scalesearch.train import data as D
from scalesearch.config import DatasetConfig
from scalesearch.train.data import DATASETS, augment, load_data, normalize, resize


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    D._MEMORY_CACHE.clear()
    yield
    D._MEMORY_CACHE.clear()


def write_images(folder: Path, n: int, size=(24, 24), mode="RGB", fmt="png", seed=0):
    """``n`` real image files (random blobs of colour) written by PIL."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        channels = {"RGB": 3, "L": 1}[mode]
        a = rng.integers(0, 256, (size[1] // 4, size[0] // 4, channels), dtype=np.uint8)
        im = Image.fromarray(a.squeeze(-1) if channels == 1 else a, mode).resize(size, Image.BILINEAR)
        im.save(folder / f"img{i:03d}.{fmt}")


def make_tree(root: Path, classes=("cat", "dog", "fox"), n_train=6, n_val=3, **kw) -> Path:
    for j, c in enumerate(classes):
        write_images(root / "train" / c, n_train, seed=j, **kw)
        write_images(root / "val" / c, n_val, seed=100 + j, **kw)
    return root


def folder_cfg(root, **kw) -> DatasetConfig:
    return DatasetConfig(name="imagefolder", root=str(root), **kw)


# ---------------------------------------------------------------- registry and synthetic
def test_registry_has_the_documented_datasets():
    assert {"synthetic", "imagefolder", "cifar10", "cifar100", "svhn", "fashionmnist"} <= set(DATASETS)


def test_unknown_dataset_lists_allowed_names():
    with pytest.raises(ValueError, match=r"dataset.name='nope' is unknown; allowed: .*cifar10.*synthetic"):
        load_data(DatasetConfig(name="nope"))


def test_synthetic_is_deterministic_balanced_and_cached():
    cfg = DatasetConfig(image_size=32, train_size=200, val_size=50)
    a = load_data(cfg)
    assert load_data(cfg) is a  # process cache
    assert a.train_x.shape == (200, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.val_x.shape == (50, 3, 32, 32) and a.train_y.dtype == torch.int64
    assert a.num_classes == 10 and a.in_channels == 3 and a.base_resolution == 40
    assert a.classes[0] == "disc-vertical" and a.classes[9] == "cross-horizontal"
    assert torch.bincount(a.train_y).tolist() == [20] * 10
    D._MEMORY_CACHE.clear()
    b = load_data(cfg)
    assert b is not a and torch.equal(a.train_x, b.train_x) and a.fingerprint == b.fingerprint
    c = load_data(replace(cfg, seed=1))
    assert c.fingerprint != a.fingerprint and not torch.equal(a.train_x, c.train_x)


def test_synthetic_texture_is_fine_detail_lost_when_downsampled():
    """The texture half of a class (stripe orientation) is plain to a gradient statistic at the
    native size, fades at half the size and is gone at a quarter; the coarse shapes survive."""
    d = load_data(DatasetConfig(image_size=64, train_size=400, val_size=10))

    def orientation_accuracy(resolution):
        g = resize(d.train_x, resolution).float().mean(1)
        gx = (g[:, :, 1:] - g[:, :, :-1]).pow(2).mean((1, 2))  # vertical stripes vary along x
        gy = (g[:, 1:, :] - g[:, :-1, :]).pow(2).mean((1, 2))
        return ((gy > gx).long() == d.train_y // 5).float().mean().item()

    assert orientation_accuracy(64) > 0.95 and orientation_accuracy(32) < 0.9 and orientation_accuracy(16) < 0.65


def test_synthetic_bad_sizes():
    with pytest.raises(ValueError, match="num_classes=11 for synthetic; allowed: 2..10"):
        load_data(DatasetConfig(num_classes=11))
    with pytest.raises(ValueError, match="base_resolution=8 is below 16"):
        load_data(DatasetConfig(base_resolution=8))


# ---------------------------------------------------------------- image folders
def test_imagefolder_train_val_layout(tmp_path):
    root = make_tree(tmp_path / "ds")
    d = load_data(folder_cfg(root))
    assert d.classes == ["cat", "dog", "fox"] and d.num_classes == 3
    assert d.train_x.shape == (18, 3, 24, 24) and d.val_x.shape == (9, 3, 24, 24)  # native size: all 24x24
    assert d.train_y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    ref = torch.from_numpy(np.array(Image.open(root / "train" / "dog" / "img000.png"))).permute(2, 0, 1)
    assert torch.equal(d.train_x[6], ref)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_imagefolder_from_an_archive_extracts_once(tmp_path, monkeypatch, fmt):
    import shutil

    monkeypatch.setenv("SCALESEARCH_CACHE", str(tmp_path / "cache"))
    make_tree(tmp_path / "src" / "pets")  # one top-level folder inside the archive
    archive = Path(shutil.make_archive(str(tmp_path / "pets"), {"tar.gz": "gztar", "zip": "zip"}[fmt],
                                       root_dir=tmp_path / "src"))
    a = load_data(folder_cfg(archive))
    assert a.classes == ["cat", "dog", "fox"] and len(a.train_y) == 18 and len(a.val_y) == 9
    extracted = list((tmp_path / "cache" / "archives").iterdir())
    assert len(extracted) == 1 and (extracted[0] / "pets" / "train" / "cat").is_dir()
    D._MEMORY_CACHE.clear()
    mtime = extracted[0].stat().st_mtime_ns
    b = load_data(folder_cfg(archive))  # second load reuses the extraction
    assert torch.equal(a.train_x, b.train_x) and extracted[0].stat().st_mtime_ns == mtime
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="broken.tar.*is not a readable tar or zip archive"):
        load_data(folder_cfg(bad))


def test_imagefolder_test_dir_jpeg_and_per_class_caps(tmp_path):
    root = tmp_path / "ds"
    for j, c in enumerate(["a", "b"]):
        write_images(root / "train" / c, 8, fmt="jpg", seed=j)
        write_images(root / "test" / c, 4, fmt="jpg", seed=10 + j)
    cfg = folder_cfg(root, train_per_class=3, val_per_class=2)
    d = load_data(cfg)
    assert torch.bincount(d.train_y).tolist() == [3, 3] and torch.bincount(d.val_y).tolist() == [2, 2]
    D._MEMORY_CACHE.clear()
    again = load_data(cfg)  # decoded again, same seed: the same pick
    assert torch.equal(d.train_x, again.train_x)
    other = load_data(replace(cfg, seed=5))
    assert not torch.equal(d.train_x, other.train_x)


def test_imagefolder_single_tree_split_by_seeded_fraction(tmp_path):
    for j, c in enumerate(["x", "y", "z"]):
        write_images(tmp_path / "ds" / c, 10, seed=j)
    cfg = folder_cfg(tmp_path / "ds", val_fraction=0.3)
    d = load_data(cfg)
    assert torch.bincount(d.train_y).tolist() == [7, 7, 7] and torch.bincount(d.val_y).tolist() == [3, 3, 3]
    rows = {bytes(t.numpy()) for t in d.train_x} | {bytes(t.numpy()) for t in d.val_x}
    assert len(rows) == 30  # disjoint: every image in exactly one split
    other = load_data(replace(cfg, seed=1))
    assert not torch.equal(d.val_x, other.val_x)
    with pytest.raises(ValueError, match="val_fraction=1.0; allowed: 0 < val_fraction < 1"):
        load_data(replace(cfg, val_fraction=1.0))


def test_imagefolder_grayscale_and_mixed_sizes(tmp_path):
    root = tmp_path / "ds"
    write_images(root / "train" / "g", 3, size=(40, 30), mode="L", fmt="png")
    write_images(root / "train" / "h", 3, size=(20, 20), mode="L", fmt="jpg")
    write_images(root / "val" / "g", 2, size=(50, 50), mode="RGB")
    write_images(root / "val" / "h", 2, size=(16, 16), mode="L", fmt="bmp")  # bmp: read through PIL
    d = load_data(folder_cfg(root, base_resolution=16))
    assert d.in_channels == 3 and d.train_x.shape == (6, 3, 32, 32)  # mixed sizes: 2 x base_resolution
    gray = d.train_x[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # grayscale → RGB
    d2 = load_data(folder_cfg(root, base_resolution=16, cache_resolution=20))
    assert d2.val_x.shape == (4, 3, 20, 20)


def test_imagefolder_disk_cache_round_trip(tmp_path):
    root = make_tree(tmp_path / "ds")
    cfg = folder_cfg(root, disk_cache=True)
    first = load_data(cfg)
    files = list((root / ".scalesearch_cache").glob("*.pt"))
    assert len(files) == 1 and not list((root / ".scalesearch_cache").glob("*.tmp"))
    # Break an image but keep its size and mtime: the cache key is unchanged, so it must be read
    # from the cache (decoding would fail).
    img = root / "train" / "cat" / "img000.png"
    st = img.stat()
    img.write_bytes(b"\0" * st.st_size)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    D._MEMORY_CACHE.clear()
    cached = load_data(cfg)
    assert torch.equal(first.train_x, cached.train_x) and torch.equal(first.val_y, cached.val_y)
    assert cached.fingerprint == first.fingerprint
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a changed file: a new key, decoded again
    D._MEMORY_CACHE.clear()
    with pytest.raises(ValueError, match="img000.png"):
        load_data(cfg)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda r: None, "does not exist"),
        (lambda r: r.mkdir(), "has no class folders"),
        (lambda r: (write_images(r / "a", 2), (r / "b").mkdir()), r"class folder .*b holds no images"),
        (lambda r: write_images(r / "only", 3), r"has 1 class folder \(only\); allowed: at least 2"),
        (lambda r: (make_tree(r), write_images(r / "val" / "wolf", 1)), "not among the training classes"),
    ],
    ids=["missing-root", "no-class-folders", "empty-class", "one-class", "unknown-val-class"],
)
def test_imagefolder_bad_input(tmp_path, build, message):
    root = tmp_path / "ds"
    build(root)
    with pytest.raises(ValueError, match=message):
        load_data(folder_cfg(root))


def test_imagefolder_root_not_set():
    with pytest.raises(ValueError, match="dataset.root is not set"):
        load_data(DatasetConfig(name="imagefolder"))


def test_imagefolder_corrupt_image_named_or_skipped(tmp_path):
    root = make_tree(tmp_path / "ds")
    (root / "train" / "dog" / "broken.jpg").write_bytes(b"this is no JPEG" * 10)
    good = (root / "val" / "fox" / "img000.png").read_bytes()
    (root / "val" / "fox" / "truncated.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"unreadable or corrupt image .*broken.jpg \(2 in all\)"):
        load_data(folder_cfg(root))
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        d = load_data(folder_cfg(root, skip_corrupt=True))
    assert len(d.train_y) == 18 and len(d.val_y) == 9


# ---------------------------------------------------------------- torchvision datasets
def test_torchvision_dataset_missing_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="CIFAR10 not found there .*dataset.download=true"):
        load_data(DatasetConfig(name="cifar10", root=str(tmp_path)))
    with pytest.raises(ValueError, match="dataset.root is not set for svhn"):
        load_data(DatasetConfig(name="svhn"))


def _write_idx(path: Path, array: np.ndarray):
    """The IDX format torchvision's MNIST family reads (big-endian dims after a type code)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_fashionmnist_from_local_files_keeps_one_channel(tmp_path):
    src = load_data(DatasetConfig(image_size=28, train_size=60, val_size=20))
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, x, y in [("train", src.train_x, src.train_y), ("t10k", src.val_x, src.val_y)]:
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x.float().mean(1).round().numpy())
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.numpy())
    d = load_data(DatasetConfig(name="fashionmnist", root=str(tmp_path), base_resolution=28, train_per_class=4))
    assert d.in_channels == 1 and d.train_x.shape == (40, 1, 28, 28) and d.val_x.shape == (20, 1, 28, 28)
    assert d.num_classes == 10 and d.classes[0] == "T-shirt/top"
    assert torch.bincount(d.train_y).tolist() == [4] * 10


# ---------------------------------------------------------------- batch transforms
@pytest.mark.parametrize("shape,size", [((5, 3, 32, 32), 58), ((5, 3, 32, 32), 19), ((3, 1, 28, 28), 40),
                                        ((2, 3, 37, 23), 32), ((1, 3, 64, 64), 17)])
def test_resize_is_torchvisions_resize(shape, size):
    """data.resize gives torchvision's pixels (transforms.v2.functional.resize, antialiased bilinear) without
    importing torchvision: exactly on this CPU's path, and on the float path (CUDA, CPUs without AVX2) as
    torchvision's float resize rounded back to uint8."""
    from torchvision.transforms.v2 import functional as TF

    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(size))
    square = x if shape[-1] == shape[-2] else x[..., : min(shape[-2:]), : min(shape[-2:])].contiguous()
    assert torch.equal(resize(square, size), TF.resize(square, [size, size], antialias=True))
    floated = TF.resize(square.float(), [size, size], antialias=True).round_().to(torch.uint8)
    native = D._native_uint8_bilinear
    try:
        D._native_uint8_bilinear = lambda: False
        assert torch.equal(resize(square, size), floated)
    finally:
        D._native_uint8_bilinear = native


def test_resize_augment_normalize():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).view(2, 3, 8, 8)
    assert resize(x, 8) is x and resize(x, 16).shape == (2, 3, 16, 16) and resize(x, 16).dtype == torch.uint8
    g = torch.Generator().manual_seed(0)
    a = augment(x, g, pad=2)
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, augment(x, torch.Generator().manual_seed(0), pad=2))
    # every output is a (possibly flipped) window of the zero-padded input
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [xp[i, :, r : r + 8, c : c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(a[i], w) or torch.equal(a[i], w.flip(-1)) for w in windows)
    flips = [augment(x, g, pad=0) for _ in range(8)]
    assert any(torch.equal(f[0], x[0].flip(-1)) for f in flips) and any(torch.equal(f[0], x[0]) for f in flips)
    n = normalize(x)
    assert n.dtype == torch.float32 and n.min() >= -2 and n.max() <= 2
