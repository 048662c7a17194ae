"""Image folders and torchvision datasets, decoded once into uint8 tensors.

An image folder is ``root/train/<class>/*`` with ``root/val|valid|validation|test/<class>/*`` (split folder names in
any case: ``Train/``, ``VAL/``), or one tree ``root/<class>/*`` (also ``root/train`` alone) split per class by a
seeded ``val_fraction``; a validation folder without a training one is refused, and so is a class with no training or
no validation image (``root`` may be an archive: :mod:`scalesearch.train.archives`). Any format PIL reads (decoded on
a thread pool); grayscale, palette and RGBA become RGB; 16-bit and float images are scaled to 8 bits (see
:func:`_rgb_array`), never clipped. Images far smaller than ``base_resolution`` are warned about. Cache size:
``cache_resolution`` if set (shorter side resized to it, centre crop); else the native size when the images share one
square size (checked on a sample of 256), else ``2 * base_resolution``, so that candidates up to γ = 2 still see real
detail. With ``disk_cache=true`` the decoded splits are kept in ``<root>/.scalesearch_cache/<key>.pt``, keyed by the
file list with sizes and mtimes, written atomically, read with ``weights_only=True``.

The torchvision datasets (``cifar10``, ``cifar100``, ``svhn``, ``fashionmnist``) are read from ``root`` at their native
size. ``train_per_class`` / ``val_per_class`` cap each class (:func:`per_class_subset`). The loaders here return the
tensors; :mod:`scalesearch.train.data` registers them and wraps them in a ``ProxyData``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io import atomic_write_bytes
from .archives import expand_root, folder_root, image_extensions, one_line

log = logging.getLogger("scalesearch")

__all__ = ["Splits", "TRAIN_NAMES", "VAL_NAMES", "SMALL_FACTOR", "per_class_subset", "file_lists",
           "imagefolder_splits", "torchvision_splits"]
Splits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]  # train x, y, val x, y, classes
TRAIN_NAMES = ("train",)
VAL_NAMES = ("val", "valid", "validation", "test")  # the first present is the validation split
SMALL_FACTOR = 2  # warn about images whose shorter side is below base_resolution / SMALL_FACTOR


def per_class_subset(y: torch.Tensor, cap: int | None, seed: int) -> torch.Tensor:
    """Sorted indices keeping at most ``cap`` samples of each class, chosen by ``seed``."""
    if cap is None:
        return torch.arange(len(y))
    if cap < 1:
        raise ValueError(f"per-class cap {cap} is below 1; allowed: >= 1 or null")
    g = torch.Generator().manual_seed(seed)
    keep = [idx[torch.randperm(len(idx), generator=g)[:cap]] for idx in
            (torch.nonzero(y == c).flatten() for c in torch.unique(y))]
    return torch.sort(torch.cat(keep)).values


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
        imgs = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in image_extensions())
        if not imgs:
            raise ValueError(f"dataset.root: class folder {_shown(d)} holds no images (class '{_shown(d.name)}' has 0 "
                             f"{what} images); allowed: at least one {' '.join(image_extensions())} file")
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
                      stacklevel=4)
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



def file_lists(cfg, root: Path) -> tuple[list[Path], list[int], list[Path], list[int], list[str]]:
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
    ti = per_class_subset(torch.tensor(tl), cfg.train_per_class, seed).tolist()
    vi = per_class_subset(torch.tensor(vl), cfg.val_per_class, seed + 1).tolist()
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
        warnings.warn(f"ignored the unreadable decoded-image cache {_shown(cache_file)} ({one_line(e)})",
                      stacklevel=5)
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


def imagefolder_splits(cfg) -> Splits:
    """(train_x, train_y, val_x, val_y, class names) of the image folder ``dataset.root`` names, decoded once
    (read from the disk cache when it holds them)."""
    root = folder_root(cfg)
    tf, tl, vf, vl, classes = file_lists(cfg, root)
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
                warnings.warn(f"could not write the decoded-image cache {_shown(cache_file)}: {e}", stacklevel=3)
    tx, ty, vx, vy = c["train_x"], c["train_y"], c["val_x"], c["val_y"]
    if len(ty) and len(vy):  # (an empty split: load_data says so)
        _check_classes(classes, ty.tolist(), vy.tolist(), "once unreadable images are skipped (dataset.skip_corrupt="
                       "true)", "(readable images in it)")
    if c.get("sizes") is not None:
        _warn_small(c["sizes"], int(cfg.base_resolution))
    return tx, ty, vx, vy, [_shown(n) for n in classes]


# ---------------------------------------------------------------- torchvision datasets
def torchvision_splits(name: str, cls_name: str, train_args: dict, val_args: dict, cfg) -> Splits:
    """(train_x, train_y, val_x, val_y, class names) of torchvision's ``cls_name`` in ``dataset.root`` (``train_args``
    and ``val_args`` pick its splits), each class capped; uint8 NCHW at the native size."""
    import torchvision.datasets

    if not cfg.root:
        raise ValueError(f"dataset.root is not set for {name}; allowed: the directory holding {cls_name} "
                         "(with dataset.download=true it is fetched there)")
    splits = []
    for args in (train_args, val_args):
        try:
            ds = getattr(torchvision.datasets, cls_name)(str(expand_root(cfg.root)),
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
    ti = per_class_subset(ty, cfg.train_per_class, int(cfg.seed))
    vi = per_class_subset(vy, cfg.val_per_class, int(cfg.seed) + 1)
    return tx[ti].contiguous(), ty[ti], vx[vi].contiguous(), vy[vi], classes
