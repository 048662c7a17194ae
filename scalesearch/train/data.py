"""Datasets for proxy runs, decoded once into uint8 tensors: the registry, :func:`load_data` and the batch transforms.

Every loader returns a :class:`ProxyData`: uint8 ``[N, C, H, W]`` train/validation tensors and
int64 labels. Images are decoded **once** per process (a cache keyed by the dataset config) and,
with ``disk_cache=true``, once per machine (``<root>/.scalesearch_cache/<key>.pt``, keyed by the
file list with sizes and mtimes, written atomically, read with ``weights_only=True``). Trials never
decode again: they move the uint8 splits to their device and :func:`resize`, :func:`augment` and
:func:`normalize` each batch there.

Registry (:data:`DATASETS`, extend with ``@register_dataset("name")``):

* ``synthetic`` — built in, generated from ``seed``, no files (:mod:`scalesearch.train.synthetic`).
* ``imagefolder`` — ``root/train/<class>/*`` with ``root/val|valid|validation|test/<class>/*``, or one tree
  ``root/<class>/*`` split per class by a seeded ``val_fraction``; ``root`` may be a ``.tar``/``.tar.gz``/``.zip``
  of such a tree, extracted once (:mod:`scalesearch.train.images`, :mod:`scalesearch.train.archives`).
* ``cifar10``, ``cifar100``, ``svhn``, ``fashionmnist`` — torchvision datasets in ``root``
  (``download`` passed through), at native size; FashionMNIST keeps its single channel
  (``in_channels == 1``, the model's stem is built for it).

``train_per_class`` / ``val_per_class`` cap each class, picking images by ``seed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import platform
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .archives import folder_root
from .images import file_lists, imagefolder_splits, torchvision_splits
from .synthetic import synthetic_splits

log = logging.getLogger("scalesearch")

__all__ = ["ProxyData", "DATASETS", "register_dataset", "load_data", "check_source", "resize", "augment", "normalize",
           "accuracy_half_width"]
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
            file_lists(cfg, folder_root(cfg))


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


# ---------------------------------------------------------------- the built-in datasets
@register_dataset("synthetic")
def synthetic(cfg) -> ProxyData:
    tx, ty, vx, vy, classes = synthetic_splits(cfg)
    return ProxyData("synthetic", tx, ty, vx, vy, len(classes), classes, int(cfg.base_resolution), _fingerprint(tx, vx))


@register_dataset("imagefolder")
def imagefolder(cfg) -> ProxyData:
    tx, ty, vx, vy, classes = imagefolder_splits(cfg)
    return ProxyData("imagefolder", tx, ty, vx, vy, len(classes), classes, int(cfg.base_resolution),
                     _fingerprint(tx, vx))


def _torchvision(name: str, cls_name: str, train_args: dict, val_args: dict) -> None:
    def loader(cfg) -> ProxyData:
        tx, ty, vx, vy, classes = torchvision_splits(name, cls_name, train_args, val_args, cfg)
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
