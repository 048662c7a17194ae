"""Datasets for proxy runs, decoded once into uint8 tensors.

Every loader returns a :class:`ProxyData`: uint8 ``[N, C, H, W]`` train/validation tensors and
int64 labels. Images are decoded **once** per process (a cache keyed by the dataset config) and,
with ``disk_cache=true``, once per machine (``<root>/.scalesearch_cache/<key>.pt``, keyed by the
file list with sizes and mtimes, written atomically, read with ``weights_only=True``). Trials never
decode again: they move the uint8 splits to their device and :func:`resize`, :func:`augment` and
:func:`normalize` each batch there.

Registry (:data:`DATASETS`, extend with ``@register_dataset("name")``):

* ``synthetic`` — built in, generated from ``seed``, no files (design below).
* ``imagefolder`` — ``root/train/<class>/*`` with ``root/val|valid|validation|test/<class>/*`` (split
  folder names in any case: ``Train/``, ``VAL/``), or one tree ``root/<class>/*`` (also ``root/train``
  alone) split per class by a seeded ``val_fraction``; a validation folder without a training one is
  refused, and so is a class with no training or no validation image. ``root`` may be a
  ``.tar``/``.tar.gz``/``.zip`` of such a tree: extracted once into ``$SCALESEARCH_CACHE`` by
  :func:`safe_extract` (members outside it are refused). Any format PIL reads (decoded on a thread
  pool); grayscale, palette and RGBA become RGB; 16-bit and float images are scaled to 8 bits (see
  :func:`_rgb_array`), never clipped. Images far smaller than ``base_resolution`` are warned about.
  Cache size: ``cache_resolution`` if set (shorter side resized to it, centre crop); else the
  native size when the images share one square size (checked on a sample of 256), else
  ``2 * base_resolution``, so that candidates up to γ = 2 still see real detail.
* ``cifar10``, ``cifar100``, ``svhn``, ``fashionmnist`` — torchvision datasets in ``root``
  (``download`` passed through), at native size; FashionMNIST keeps its single channel
  (``in_channels == 1``, the model's stem is built for it).

``train_per_class`` / ``val_per_class`` cap each class, picking images by ``seed``.

**The synthetic dataset** is the embedded default and is built so that all three scaling
dimensions matter. Class ``c`` is the *combination* of a coarse shape (``c % 5``: disc, square,
triangle, ring, cross) and a fine texture filling it (``c // 5``: vertical or horizontal stripes,
period 2.2–4.5 px at the native ``image_size``). The shapes are randomly placed, sized (radius
50–70 % of the half-width), tilted (±14°) and coloured, on a dark or bright gradient background
with pixel noise; the stripes alternate a dark and a bright colour, so a shape stays visible
when its stripes blur away. Shapes survive any downsampling, stripes do not: at resolution R
their period is ``p·R/image_size`` px and they fade below the Nyquist limit of 2 px, so the share
of images whose texture is visible grows with R up to the native size — resolution (γ) helps
(with the defaults, image_size 64 and base_resolution 32, across every γ of the search). A class
is only known from shape *and* texture together, which gives depth (α) and width (β) something
to do. ``num_classes`` ≤ 5 keeps only the shapes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import lzma
import math
import os
import platform
import shutil
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io import atomic_write_bytes

log = logging.getLogger("scalesearch")

__all__ = ["ProxyData", "DATASETS", "register_dataset", "load_data", "check_source", "resize", "augment", "normalize",
           "safe_extract", "extract_archive", "accuracy_half_width"]
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
ARCHIVE_ALLOWED = f"a complete archive ({', '.join(ARCHIVE_SUFFIXES)}) of an image folder"
# what a damaged archive raises while it is read (tarfile, gzip, bz2, lzma, zipfile; RuntimeError: encrypted
# zip member, NotImplementedError: unsupported zip compression)
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError,
                   RuntimeError, NotImplementedError)
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ", "xz"), (b"PK\x03\x04", "zip"))
MAX_VAL_HALF_WIDTH = 0.05  # warn when the 95 % half-width of a validation accuracy exceeds this


@dataclass
class ProxyData:
    name: str
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor  # uint8 [M, C, H, W]
    val_y: torch.Tensor  # int64 [M]
    num_classes: int
    classes: list[str] = field(default_factory=list)
    base_resolution: int = 32
    fingerprint: str = ""

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])


DATASETS: dict[str, Callable] = {}
_MEMORY_CACHE: dict[tuple, ProxyData] = {}
_KEY_FIELDS = ("name", "root", "base_resolution", "cache_resolution", "train_per_class", "val_per_class",
               "val_fraction", "skip_corrupt", "seed", "num_classes", "image_size", "train_size", "val_size")


def register_dataset(name: str):
    """Decorator: ``@register_dataset("mine") def mine(cfg) -> ProxyData``."""

    def deco(fn):
        DATASETS[name] = fn
        return fn

    return deco


def _check_settings(cfg) -> str:
    """The dataset's name (lower case) once its plain settings are checked."""
    name = str(cfg.name).lower()
    if name not in DATASETS:
        raise ValueError(f"dataset.name={cfg.name!r} is unknown; allowed: {', '.join(sorted(DATASETS))}")
    if cfg.base_resolution < 16:
        raise ValueError(f"dataset.base_resolution={cfg.base_resolution} is below 16; allowed: >= 16")
    for k in ("train_per_class", "val_per_class", "cache_resolution"):
        if (v := getattr(cfg, k, None)) is not None and v < 1:
            raise ValueError(f"dataset.{k}={v} is below 1; allowed: >= 1 or null")
    return name


@contextlib.contextmanager
def _readable(cfg):
    """An OSError (an unreadable folder or file, an unwritable cache) as one line naming the setting."""
    try:
        yield
    except OSError as e:
        why = e.strerror or " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"dataset.root={cfg.root!r}: {why} ({e.filename or cfg.root}); allowed: a dataset.root "
                         "whose files and folders are readable (archives: a writable $SCALESEARCH_CACHE)") from None


def check_source(cfg) -> None:
    """What can be checked of a dataset without decoding it, with :func:`load_data`'s one-line refusals: its
    settings, and an image folder's tree (the splits, the class folders, an image in each). A multirun checks
    every job's before the first one trains."""
    if _check_settings(cfg) == "imagefolder":
        with _readable(cfg):
            _file_lists(cfg, _folder_root(cfg))


def load_data(cfg) -> ProxyData:
    """The dataset a ``DatasetConfig`` describes, decoded once per process."""
    name = _check_settings(cfg)
    key = tuple(str(getattr(cfg, k, None)) for k in _KEY_FIELDS)
    if key not in _MEMORY_CACHE:
        with _readable(cfg):
            data = DATASETS[name](cfg)
        if data.num_classes < 2:
            raise ValueError(f"dataset {name} has {data.num_classes} class(es); allowed: at least 2")
        if len(data.train_y) == 0 or len(data.val_y) == 0:
            raise ValueError(f"dataset {name} has {len(data.train_y)} training and {len(data.val_y)} validation "
                             "images; allowed: at least one of each")
        if (hw := accuracy_half_width(len(data.val_y))) > MAX_VAL_HALF_WIDTH:
            msg = (f"validation split has {len(data.val_y)} images: an accuracy measured on it is uncertain by up "
                   f"to ±{hw:.3f} (95 %); allowed: more validation images (val_per_class, val_fraction, val_size, "
                   "or a larger val/ folder)")
            log.warning(msg)  # one line on the console (the report and the verdict repeat the error bar)
        _MEMORY_CACHE[key] = data
    return _MEMORY_CACHE[key]


def accuracy_half_width(n: int, p: float = 0.5, level_z: float = 1.96) -> float:
    """Half-width ``level_z·sqrt(p(1-p)/n)`` of the normal-approximation confidence interval of an
    accuracy ``p`` measured on ``n`` images (p = 0.5: the worst case; 1.96: 95 %); inf for n < 1."""
    if not 0 <= p <= 1:
        raise ValueError(f"accuracy p={p}; allowed: 0 <= p <= 1")
    return level_z * math.sqrt(p * (1 - p) / n) if n >= 1 else math.inf


def _fingerprint(*tensors: torch.Tensor) -> str:
    """Content hash of the decoded tensors."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        if t.numel():  # (an empty split is refused by load_data, after this)
            h.update(memoryview(t.contiguous().numpy()).cast("B"))
    return h.hexdigest()[:16]


def _per_class_subset(y: torch.Tensor, cap: int | None, seed: int) -> torch.Tensor:
    """Sorted indices keeping at most ``cap`` samples of each class, chosen by ``seed``."""
    if cap is None:
        return torch.arange(len(y))
    if cap < 1:
        raise ValueError(f"per-class cap {cap} is below 1; allowed: >= 1 or null")
    g = torch.Generator().manual_seed(seed)
    keep = [idx[torch.randperm(len(idx), generator=g)[:cap]] for idx in
            (torch.nonzero(y == c).flatten() for c in torch.unique(y))]
    return torch.sort(torch.cat(keep)).values


# ---------------------------------------------------------------- synthetic
SHAPES = ("disc", "square", "triangle", "ring", "cross")
TEXTURES = ("vertical", "horizontal")


def _synthetic_chunk(y: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    n = len(y)
    shape, texture = y % len(SHAPES), y // len(SHAPES)
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    lin = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    cx, cy = (u(n, 1, 1) - 0.5) * 0.4, (u(n, 1, 1) - 0.5) * 0.4
    r = 0.5 + 0.2 * u(n, 1, 1)
    th = (u(n, 1, 1) - 0.5) * 0.5  # +-14 deg
    dx, dy = xx - cx, yy - cy
    pu, pv = dx * torch.cos(th) + dy * torch.sin(th), -dx * torch.sin(th) + dy * torch.cos(th)
    d = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack([
        d < r,  # disc
        torch.maximum(pu.abs(), pv.abs()) < 0.8 * r,  # square
        (pv > -0.5 * r) & (pv - 1.732 * pu < r) & (pv + 1.732 * pu < r),  # triangle
        (d < r) & (d > 0.55 * r),  # ring
        ((pu.abs() < 0.3 * r) & (pv.abs() < r)) | ((pv.abs() < 0.3 * r) & (pu.abs() < r)),  # cross
    ], 1)
    mask = masks[torch.arange(n), shape].float().unsqueeze(1)
    # fine stripes: period 2.2-4.5 px at the native size, vertical or horizontal (+-12 deg jitter)
    period = 2.2 + 2.3 * u(n, 1, 1)
    ang = texture.view(n, 1, 1) * (math.pi / 2) + (u(n, 1, 1) - 0.5) * 0.4
    px, py = (xx + 1) * (size - 1) / 2, (yy + 1) * (size - 1) / 2
    phase = u(n, 1, 1) * 2 * math.pi
    wave = torch.sin(2 * math.pi * (px * torch.cos(ang) + py * torch.sin(ang)) / period + phase)
    stripes = (wave > 0).float().unsqueeze(1)
    # stripes of a dark and a bright colour (mean ~0.5) on a background that is either dark or bright,
    # so the shape stays visible when the stripes blur away
    c1, c2 = 0.3 * u(n, 3, 1, 1), 0.7 + 0.3 * u(n, 3, 1, 1)
    fg = c1 * stripes + c2 * (1 - stripes)
    dark = (u(n, 1, 1, 1) < 0.5).float()
    b1, b2 = 0.15 * u(n, 3, 1, 1), 0.15 * u(n, 3, 1, 1)
    ramp = ((xx * torch.cos(th) + yy * torch.sin(th)) * 0.5 + 0.5).unsqueeze(1)
    bg = b1 * ramp + b2 * (1 - ramp)
    bg = dark * bg + (1 - dark) * (1 - bg)
    img = bg * (1 - mask) + fg * mask + 0.06 * torch.randn(n, 3, size, size, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _synthetic_split(n: int, num_classes: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    x = torch.cat([_synthetic_chunk(y[i : i + 512], size, g) for i in range(0, n, 512)])
    return x, y


@register_dataset("synthetic")
def synthetic(cfg) -> ProxyData:
    k, size = int(cfg.num_classes), int(cfg.image_size)
    if not 2 <= k <= len(SHAPES) * len(TEXTURES):
        raise ValueError(f"dataset.num_classes={k} for synthetic; allowed: 2..{len(SHAPES) * len(TEXTURES)} "
                         f"({len(SHAPES)} shapes x {len(TEXTURES)} textures)")
    if size < 16:
        raise ValueError(f"dataset.image_size={size} is below 16; allowed: >= 16")
    if cfg.train_size < k or cfg.val_size < k:
        raise ValueError(f"dataset.train_size={cfg.train_size}, val_size={cfg.val_size}; "
                         f"allowed: >= num_classes ({k})")
    tx, ty = _synthetic_split(int(cfg.train_size), k, size, int(cfg.seed) * 2 + 1)
    vx, vy = _synthetic_split(int(cfg.val_size), k, size, int(cfg.seed) * 2 + 2)
    classes = [f"{SHAPES[c % len(SHAPES)]}-{TEXTURES[c // len(SHAPES)]}" for c in range(k)]
    return ProxyData("synthetic", tx, ty, vx, vy, k, classes, int(cfg.base_resolution), _fingerprint(tx, vx))


# ---------------------------------------------------------------- image folders
TRAIN_NAMES = ("train",)
VAL_NAMES = ("val", "valid", "validation", "test")  # the first present is the validation split
SMALL_FACTOR = 2  # warn about images whose shorter side is below base_resolution / SMALL_FACTOR


def _shown(path) -> str:
    """``path`` printable in one line: undecodable bytes of a file name (kept by Python as surrogates)
    become ``\\xff``-style escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _split_dirs(root: Path) -> tuple[Path, Path | None]:
    """(training tree, validation tree or None): ``root/train`` and the first of ``root/val|valid|
    validation|test``, matched case-insensitively; else ``root`` itself, as one tree to split."""
    found: dict[str, list[Path]] = {}
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name.lower() in TRAIN_NAMES + VAL_NAMES:
            found.setdefault(p.name.lower(), []).append(p)
    if twins := next((d for d in found.values() if len(d) > 1), None):
        raise ValueError(f"dataset.root: {_shown(root)} has folders {', '.join(_shown(d.name) for d in twins)} that "
                         "differ only in case; allowed: one folder per split (train, val)")
    val = next((found[s][0] for s in VAL_NAMES if s in found), None)
    if len(present := [found[s][0].name for s in VAL_NAMES if s in found]) > 1:
        log.info("using %s/ as the validation split (not %s)", _shown(val.name), ", ".join(map(_shown, present[1:])))
    if "train" in found:
        return found["train"][0], val
    if val is not None:
        raise ValueError(f"dataset.root: {_shown(root)} has a {_shown(val.name)}/ folder but no train/ folder; "
                         f"allowed: root/train/<class>/<images> with root/{_shown(val.name)}/<class>/<images>, "
                         "or one tree root/<class>/<images> split by dataset.val_fraction")
    return root, None


def _scan(split: Path, what: str, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names) of ``split/<class>/**/<image>``; ``what`` names the split
    (training, validation); ``classes``: the training classes, every one of which must be there."""
    dirs = sorted(p for p in split.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise ValueError(f"dataset.root: {_shown(split)} has no class folders; "
                         f"allowed: {_shown(split)}/<class>/<images>")
    names = classes if classes is not None else [d.name for d in dirs]
    if missing := [n for n in names if n not in {d.name for d in dirs}]:
        raise ValueError(f"dataset.root: class '{_shown(missing[0])}' has 0 {what} images (no folder "
                         f"{_shown(split / missing[0])}; {len(missing)} class(es) missing in all); allowed: every "
                         f"training class also in {_shown(split)}/ with at least one image")
    files, labels = [], []
    for d in dirs:
        if d.name not in names:
            raise ValueError(f"dataset.root: class folder {_shown(d)} is not among the training classes (class "
                             f"'{_shown(d.name)}' has 0 training images); allowed: {[_shown(n) for n in names]}")
        imgs = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in _image_extensions())
        if not imgs:
            raise ValueError(f"dataset.root: class folder {_shown(d)} holds no images (class '{_shown(d.name)}' has 0 "
                             f"{what} images); allowed: at least one {' '.join(_image_extensions())} file")
        files += imgs
        labels += [names.index(d.name)] * len(imgs)
    return files, labels, names


def _check_classes(classes: list[str], train_labels: list[int], val_labels: list[int], why: str, hint: str) -> None:
    """Refuse a class with no training or no validation image: ``why`` says how that came about,
    ``hint`` what would help."""
    nt = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=len(classes))
    nv = np.bincount(np.asarray(val_labels, dtype=np.int64), minlength=len(classes))
    for c, name in enumerate(classes):
        if nt[c] == 0 or nv[c] == 0:
            raise ValueError(f"dataset.root: class '{_shown(name)}' has {nt[c]} training and {nv[c]} validation images "
                             f"{why}; allowed: at least one training and one validation image per class {hint}")


def _split(files: list[Path], labels: list[int], fraction: float, seed: int):
    """Hold out ``fraction`` of every class (at least one image), chosen by ``seed``."""
    if not 0 < fraction < 1:
        raise ValueError(f"dataset.val_fraction={fraction}; allowed: 0 < val_fraction < 1")
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels)
    val = set()
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        val.update(idx[torch.randperm(len(idx), generator=g)][: max(1, round(len(idx) * fraction))].tolist())
    pick = lambda keep: ([files[i] for i in keep], [labels[i] for i in keep])  # noqa: E731
    return *pick([i for i in range(len(files)) if i not in val]), *pick(sorted(val))


def _rgb_array(im: Image.Image) -> np.ndarray:
    """uint8 ``[H, W, 3]`` of any PIL image. 8-bit modes go through ``convert("RGB")`` (palette applied,
    alpha dropped). The wide grey modes, which ``convert`` clips at 255 (a 16-bit image turns white), are
    scaled instead: ``I;16*`` (16-bit PNG, TIFF, PGM), and ``I`` holding 0..65535 (how PIL opens 16-bit
    files), by 1/257, which maps 0..65535 exactly onto 0..255 (12-bit data stored in 16 bits stays dark, as
    it is); ``F`` (float) holding [0, 1], the usual float-image range, by 255. Any other ``I`` or ``F``
    (signed or 32-bit integers, HDR floats) has no common scale: its own min..max range maps onto 0..255
    (a constant image becomes 0); NaN becomes 0, ±inf the ends of the range."""
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return np.array(im.convert("RGB"))
    a = np.asarray(im).astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if im.mode != "F" and lo >= 0 and hi <= 65535:
        a = a / 257
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255
    else:
        a = (a - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(a)
    a = np.clip(np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0), 0, 255)
    return np.repeat(np.rint(a).astype(np.uint8)[:, :, None], 3, axis=2)


def _decode(path: Path, size: int) -> tuple[torch.Tensor, tuple[int, int]] | None:
    """(uint8 RGB ``[3, size, size]`` (shorter side resized to ``size``, centre crop), native (width,
    height)), or None if unreadable."""
    try:
        with Image.open(path) as im:
            native = im.size
            im.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale while still >= size
            img = torch.from_numpy(_rgb_array(im)).permute(2, 0, 1)
    except Exception:  # noqa: BLE001 - PIL raises many types on a damaged or hostile file (DecompressionBombError, ...)
        return None
    if tuple(img.shape[-2:]) != (size, size):
        from torchvision.transforms.v2 import functional as TF

        img = TF.center_crop(TF.resize(img, [size], antialias=True), [size, size])
    return img, native


def _decode_all(files: list[Path], size: int, skip_corrupt: bool) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """Decode ``files`` on a thread pool into one uint8 ``[N, 3, size, size]``; indices kept, and their
    native (width, height) as int64 ``[N, 2]``."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL releases the GIL while decoding
        images = list(pool.map(lambda p: _decode(p, size), files))
    bad = [f for f, im in zip(files, images) if im is None]
    if bad and not skip_corrupt:
        raise ValueError(f"dataset.root: unreadable or corrupt image {_shown(bad[0])} ({len(bad)} in all); "
                         "allowed: readable images, or dataset.skip_corrupt=true to skip them")
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image(s) (dataset.skip_corrupt=true), e.g. {_shown(bad[0])}",
                      stacklevel=3)
    keep = [i for i, im in enumerate(images) if im is not None]
    if not keep:
        raise ValueError(f"dataset.root: none of the {len(files)} images could be read (e.g. {_shown(files[0])}); "
                         "allowed: readable images in a format PIL reads")
    return torch.stack([images[i][0] for i in keep]), keep, torch.tensor([images[i][1] for i in keep])


def _warn_small(sizes: torch.Tensor, base: int) -> None:
    """One warning when images are far smaller than the proxy trains on: shorter side below
    ``base / SMALL_FACTOR``, i.e. upscaled more than SMALL_FACTOR times to the base resolution."""
    limit = base // SMALL_FACTOR
    small = Counter(tuple(s) for s in sizes.tolist() if min(s) < limit)
    if small:
        shown = ", ".join(f"{w}×{h}" for (w, h), _ in small.most_common(3)) + (", ..." if len(small) > 3 else "")
        log.warning(f"{sum(small.values())} of {len(sizes)} images are smaller than {limit} px, 1/{SMALL_FACTOR} of "
                    f"dataset.base_resolution={base} ({shown}); they are upscaled to {base} px and more for training, "
                    "so the proxy learns from interpolated pixels (use larger images, or a smaller "
                    "dataset.base_resolution, >= 16)")


def _cache_size(cfg, files: list[Path], sample: int = 256) -> int:
    """``cache_resolution``; else the native size if the images share one square size (judged on
    ``sample`` files spread over the list; any other image is resized to it); else 2·base."""
    if cfg.cache_resolution:
        return int(cfg.cache_resolution)
    sizes = set()
    for p in files[:: max(1, len(files) // sample)]:
        try:
            with Image.open(p) as im:
                sizes.add(im.size)
        except Exception:  # noqa: BLE001 - unreadable here: _decode_all reports it
            pass
    if len(sizes) == 1 and (s := sizes.pop())[0] == s[1]:
        return s[0]
    return 2 * int(cfg.base_resolution)


# ---------------------------------------------------------------- archives
def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar or zip archive into ``dest``, refusing any member that would land outside
    it (absolute paths, ``..``, links pointing out): a ValueError naming the member."""
    archive, dest = Path(archive), Path(dest).resolve()

    def check(name: str) -> None:
        target = (dest / name).resolve()
        if target != dest and dest not in target.parents:
            raise ValueError(f"archive {archive.name}: member {name!r} would be written outside the "
                             "extraction directory; allowed: relative paths inside the archive")

    where = f"dataset.root={str(archive)!r}"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for n in z.namelist():
                    check(n)
                z.extractall(dest)
            return
        try:
            tar = tarfile.open(archive)
        except tarfile.ReadError:
            with open(archive, "rb") as f:
                head = f.read(6)
            kind = next((k for m, k in _MAGIC if head.startswith(m)), None)
            if kind:  # it starts like one, and not even the first member could be read
                raise ValueError(f"{where} is a truncated or corrupt archive ({kind} data that ends early or is "
                                 f"damaged: no member could be read); allowed: {ARCHIVE_ALLOWED}") from None
            raise ValueError(f"{where} is not a readable tar or zip archive (no tar, gzip, bz2, xz or zip data could "
                             f"be read: it is empty or another format); allowed: {ARCHIVE_ALLOWED}") from None
        with tar:
            members = tar.getmembers()
            for m in members:
                check(m.name)
                if m.issym() or m.islnk():
                    check(str(Path(m.name).parent / m.linkname) if m.issym() else m.linkname)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as e:
        raise ValueError(f"{where} has a member that cannot be extracted safely ({_one_line(e)}); "
                         "allowed: regular files, folders and links inside the archive") from None
    except _ARCHIVE_ERRORS as e:
        if isinstance(e, OSError) and e.errno is not None:  # a system error (disk full, permission), not the data
            raise ValueError(f"{where} could not be extracted into {dest} ({_one_line(e)}); "
                             f"allowed: {ARCHIVE_ALLOWED}, extracted into a writable $SCALESEARCH_CACHE "
                             "with free space") from None
        raise ValueError(f"{where} is a truncated or corrupt archive ({type(e).__name__}: {_one_line(e)}); "
                         f"allowed: {ARCHIVE_ALLOWED}") from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def extract_archive(archive: Path) -> Path:
    """Extract ``archive`` once into ``$SCALESEARCH_CACHE`` (default ``~/.cache/scalesearch``),
    keyed by its path, size and mtime; the extraction is renamed into place only when complete.
    Returns the image-folder root (the single top-level folder if the archive has one)."""
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("SCALESEARCH_CACHE", Path.home() / ".cache" / "scalesearch")) / "archives"
    name = archive.name
    for suf in ARCHIVE_SUFFIXES:
        name = name.removesuffix(suf)
    dest = cache / f"{name}-{key}"
    if not dest.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=cache))
        try:
            log.info("extracting %s into %s (once)", archive, dest)
            safe_extract(archive, tmp)
            if not any(not p.name.startswith(".") for p in tmp.iterdir()):
                raise ValueError(f"dataset.root={str(archive)!r} is an empty archive; allowed: {ARCHIVE_ALLOWED}")
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():  # a concurrent extraction did not win the race either
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() and not _has_images(entries[0]) else dest


def _has_images(d: Path) -> bool:
    return any(p.suffix.lower() in _image_extensions() for p in d.iterdir() if p.is_file())


def _expand_root(value) -> Path:
    """``dataset.root`` with ``~`` / ``~user`` expanded; an unknown user or home is one line naming it."""
    try:
        return Path(value).expanduser()
    except RuntimeError:  # Path.expanduser: no such user, or no HOME and no password entry
        head = str(value).split("/", 1)[0]
        why = "$HOME is not set" if head == "~" else "no such user"
        raise ValueError(f"dataset.root={str(value)!r}: the home directory {head!r} is unknown ({why}); "
                         "allowed: an absolute or relative path, ~/<path>, or ~<existing user>/<path>") from None


def _folder_root(cfg) -> Path:
    """The image-folder directory ``dataset.root`` names (an archive extracted once)."""
    if not cfg.root:
        raise ValueError("dataset.root is not set; allowed: a directory root/train/<class>/* with "
                         "root/val|test/<class>/*, or root/<class>/*, or a .tar/.tar.gz/.zip of one")
    root = _expand_root(cfg.root)
    allowed = f"allowed: an image-folder directory or an archive ({', '.join(ARCHIVE_SUFFIXES)}) of one"
    if root.is_file():
        if not root.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise ValueError(f"dataset.root={str(root)!r} is a file, not an image-folder directory or an archive "
                             f"({', '.join(ARCHIVE_SUFFIXES)}); allowed: a directory root/<class>/<images> or "
                             "root/train|val/<class>/<images>, or an archive of one")
        root = extract_archive(root)
    if not root.is_dir():
        raise ValueError(f"dataset.root={str(root)!r} does not exist or is not a directory; {allowed}")
    return root


def _file_lists(cfg, root: Path) -> tuple[list[Path], list[int], list[Path], list[int], list[str]]:
    """(training files, labels, validation files, labels, class folder names), capped per class."""
    seed = int(cfg.seed)
    train_dir, val_dir = _split_dirs(root)
    tf, tl, classes = _scan(train_dir, "training")
    if len(classes) < 2:
        raise ValueError(f"dataset.root: {_shown(train_dir)} has {len(classes)} class folder ({_shown(classes[0])}); "
                         "allowed: at least 2")
    if val_dir is not None:
        vf, vl, _ = _scan(val_dir, "validation", classes)
    else:
        tf, tl, vf, vl = _split(tf, tl, cfg.val_fraction, seed)
        _check_classes(classes, tl, vl, f"once the single tree {_shown(train_dir)} is split by dataset.val_fraction="
                       f"{cfg.val_fraction}", "(more images in it, a lower val_fraction, or train/ and val/ folders)")
    ti = _per_class_subset(torch.tensor(tl), cfg.train_per_class, seed).tolist()
    vi = _per_class_subset(torch.tensor(vl), cfg.val_per_class, seed + 1).tolist()
    return [tf[i] for i in ti], [tl[i] for i in ti], [vf[i] for i in vi], [vl[i] for i in vi], classes


def _cache_file(cfg, root: Path, files: list[Path]) -> Path:
    """``<root>/.scalesearch_cache/<key>.pt``, keyed by the settings and the files (paths, sizes, mtimes)."""
    # "rgb-v2": 16-bit and float images are scaled, not clipped, since this version (older caches are stale)
    h = hashlib.sha256(repr((cfg.cache_resolution, cfg.base_resolution, bool(cfg.skip_corrupt), "rgb-v2")).encode())
    for p in files:
        st = p.stat()
        h.update(os.fsencode(p.relative_to(root)) + f":{st.st_size}:{st.st_mtime_ns}\n".encode())
    return root / ".scalesearch_cache" / f"{h.hexdigest()[:24]}.pt"


def _read_cache(cache_file: Path) -> dict | None:
    try:
        c = torch.load(cache_file, weights_only=True)
        _ = c["train_x"], c["train_y"], c["val_x"], c["val_y"]
    except Exception as e:  # noqa: BLE001 - a damaged cache file is decoded again (and rewritten)
        warnings.warn(f"ignored the unreadable decoded-image cache {_shown(cache_file)} ({_one_line(e)})",
                      stacklevel=4)
        return None
    log.info("loaded decoded images from %s", _shown(cache_file))
    return c


def _decode_splits(cfg, tf: list[Path], tl: list[int], vf: list[Path], vl: list[int]) -> dict:
    """{train_x, train_y, val_x, val_y, sizes}: the files decoded (native sizes of those kept)."""
    size = _cache_size(cfg, tf + vf)
    log.info("decoding %d images at %dx%d (once)", len(tf) + len(vf), size, size)
    x, keep, sizes = _decode_all(tf + vf, size, cfg.skip_corrupt)
    y, is_train = torch.tensor(tl + vl)[keep], torch.tensor(keep) < len(tf)
    return {"train_x": x[is_train], "train_y": y[is_train], "val_x": x[~is_train], "val_y": y[~is_train],
            "sizes": sizes}


@register_dataset("imagefolder")
def imagefolder(cfg) -> ProxyData:
    root = _folder_root(cfg)
    tf, tl, vf, vl, classes = _file_lists(cfg, root)
    cache_file = _cache_file(cfg, root, tf + vf)
    c = _read_cache(cache_file) if cfg.disk_cache and cache_file.exists() else None
    if c is None:
        c = _decode_splits(cfg, tf, tl, vf, vl)
        if cfg.disk_cache:
            buf = io.BytesIO()
            torch.save(c, buf)
            try:
                atomic_write_bytes(cache_file, buf.getvalue())
            except OSError as e:
                warnings.warn(f"could not write the decoded-image cache {_shown(cache_file)}: {e}", stacklevel=2)
    tx, ty, vx, vy = c["train_x"], c["train_y"], c["val_x"], c["val_y"]
    if len(ty) and len(vy):  # (an empty split: load_data says so)
        _check_classes(classes, ty.tolist(), vy.tolist(), "once unreadable images are skipped (dataset.skip_corrupt="
                       "true)", "(readable images in it)")
    if c.get("sizes") is not None:
        _warn_small(c["sizes"], int(cfg.base_resolution))
    return ProxyData("imagefolder", tx, ty, vx, vy, len(classes), [_shown(n) for n in classes],
                     int(cfg.base_resolution), _fingerprint(tx, vx))


# ---------------------------------------------------------------- torchvision datasets
def _torchvision(name: str, cls_name: str, train_args: dict, val_args: dict) -> None:
    def loader(cfg) -> ProxyData:
        import torchvision.datasets

        if not cfg.root:
            raise ValueError(f"dataset.root is not set for {name}; allowed: the directory holding {cls_name} "
                             "(with dataset.download=true it is fetched there)")
        splits = []
        for args in (train_args, val_args):
            try:
                ds = getattr(torchvision.datasets, cls_name)(str(_expand_root(cfg.root)),
                                                             download=bool(cfg.download), **args)
            except RuntimeError as e:
                raise ValueError(f"dataset.root={str(cfg.root)!r}: {cls_name} not found there "
                                 f"({str(e).splitlines()[0]}); allowed: a directory holding it, "
                                 "or dataset.download=true with internet") from None
            x = torch.as_tensor(np.asarray(ds.data))
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2) if x.shape[-1] == 3 else x  # → NCHW
            y = torch.as_tensor(np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels)).long()
            splits.append((x, y))
        (tx, ty), (vx, vy) = splits
        classes = list(getattr(ds, "classes", None) or [str(c) for c in range(int(ty.max()) + 1)])
        ti = _per_class_subset(ty, cfg.train_per_class, int(cfg.seed))
        vi = _per_class_subset(vy, cfg.val_per_class, int(cfg.seed) + 1)
        tx, ty, vx, vy = tx[ti].contiguous(), ty[ti], vx[vi].contiguous(), vy[vi]
        if cfg.cache_resolution:
            tx, vx = resize(tx, int(cfg.cache_resolution)), resize(vx, int(cfg.cache_resolution))
        return ProxyData(name, tx, ty, vx, vy, len(classes), classes, int(cfg.base_resolution), _fingerprint(tx, vx))

    register_dataset(name)(loader)


_torchvision("cifar10", "CIFAR10", {"train": True}, {"train": False})
_torchvision("cifar100", "CIFAR100", {"train": True}, {"train": False})
_torchvision("svhn", "SVHN", {"split": "train"}, {"split": "test"})
_torchvision("fashionmnist", "FashionMNIST", {"train": True}, {"train": False})


# ---------------------------------------------------------------- on-device batch transforms
def resize(x: torch.Tensor, resolution: int, chunk: int = 2048) -> torch.Tensor:
    """A uint8 ``[N, C, H, W]`` batch at ``resolution``² (antialiased bilinear), on ``x``'s device,
    in chunks so that whole splits fit; returned as is when already that size. The same pixels as
    torchvision's ``transforms.v2.functional.resize`` (tested): torch's native uint8 kernel on AVX2/ARM CPUs, else
    float32 rounded back — called through torch so that a trial's process does not import torchvision."""
    if tuple(x.shape[-2:]) == (resolution, resolution):
        return x
    native = x.device.type == "cpu" and _native_uint8_bilinear()
    size = [resolution, resolution]

    def one(b: torch.Tensor) -> torch.Tensor:
        if native:
            return F.interpolate(b, size=size, mode="bilinear", align_corners=False, antialias=True)
        return F.interpolate(b.float(), size=size, mode="bilinear", align_corners=False,
                             antialias=True).round_().to(torch.uint8)

    return torch.cat([one(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def _native_uint8_bilinear() -> bool:
    """Whether torch resizes uint8 images itself here (torchvision's rule: AVX2/AVX512 or ARM CPUs)."""
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")


def _image_extensions() -> tuple[str, ...]:
    """The image files a folder dataset reads: torchvision's ``IMG_EXTENSIONS`` (imported here, on the driver:
    a trial's process never scans folders and does not load torchvision)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def augment(x: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Per-image random crop from a ``pad``-pixel zero-padded batch, and a random horizontal flip.
    Random numbers come from ``generator``, which lives on ``x``'s device (no host sync)."""
    n, _, h, w = x.shape
    dev = x.device
    oy, ox = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator, device=dev)
    flip = torch.rand(n, 1, generator=generator, device=dev) < 0.5
    cols = torch.arange(w, device=dev)
    iy = (oy + torch.arange(h, device=dev))[:, :, None]  # [n, h, 1]
    ix = (ox + torch.where(flip, w - 1 - cols, cols))[:, None, :]  # [n, 1, w]: the flip is a reversed index
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    return xp[torch.arange(n, device=dev)[:, None, None], :, iy, ix].permute(0, 3, 1, 2)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float32 with roughly zero mean and unit variance (one fixed affine map for every
    dataset, so no statistics have to be computed or stored)."""
    return (x.float() - 127.5) / 64.0
