"""Proxy trainer throughput: images/s of scalesearch's training step against a plain reference
loop over torchvision's ``efficientnet_b0``, and training from real CIFAR-10 JPEGs against
synthetic tensors of the same shape. Everything is measured in the same run, interleaved in rounds;
each side's best round counts (the least disturbed by other processes on the machine; the median
is kept in the JSON too), so the ratios hold even when the absolute numbers drift.

* trainer   — :class:`scalesearch.train.proxy.TrainStep` on B0 (the code ``train_proxy`` runs): uint8
              batch gathered on the device → resize → random crop + flip → normalise → forward →
              backward → optimizer step (conf/proxy/cpu.yaml or gpu.yaml: AdamW) → LR schedule.
* reference — ``torchvision.models.efficientnet_b0``: a ready float batch on the device →
              forward → backward → optimizer step, written as plainly as a user would. Same batch,
              resolution, precision (bf16 autocast on CUDA), memory layout (channels_last),
              optimizer and hyperparameters, dropout and drop-path; torch's default optimizer
              implementation, where the trainer uses the fused one.
* real data — the trainer fed from CIFAR-10 JPEGs (../shared/datasets) decoded once by
              ``scalesearch.train.data`` (32 px uint8 on the device, resized per batch), against the
              trainer fed random uint8 tensors already at the model's input shape.

    python benchmarks/proxy_throughput.py                      # CPU defaults, ~2 minutes
    python benchmarks/proxy_throughput.py --device cuda --resolution 224 --batch-size 256 --steps 50

Writes benchmarks/results/proxy_throughput-<device>.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from omegaconf import OmegaConf

from scalesearch.config import DatasetConfig, ProxyConfig
from scalesearch.train.data import load_data
from scalesearch.train.proxy import TrainStep, build_proxy_model, resolve_device
from scalesearch.scaling.spec import B0

HERE = Path(__file__).resolve().parent
CIFAR_TAR = HERE.parents[1] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip() + f" ({torch.get_num_threads()} threads)"
    return platform.processor() or "cpu"


def _loadavg() -> float | None:
    """The 1-minute load average (other processes competing for the CPU skew CPU figures)."""
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, steps: int, batch: int, device: torch.device) -> float:
    """images/s over ``steps`` calls of ``fn`` (one host sync at the end)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = fn()
    loss.item()
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def trainer_fn(budget, device, resolution, batch, images: torch.Tensor, labels: torch.Tensor, steps: int):
    """One trainer step per call on a random batch gathered from ``images`` (uint8, on the device)."""
    torch.manual_seed(0)
    model = build_proxy_model(B0, 10, 3, budget)
    gen = torch.Generator(device=device).manual_seed(0)
    step = TrainStep(model, budget, device, resolution, total_steps=10**6, steps_per_epoch=steps, generator=gen)

    def one():
        idx = torch.randint(0, len(images), (batch,), generator=gen, device=device)
        return step(images[idx], labels[idx])

    return one


def reference_fn(budget, device, resolution, batch):
    """A plain training loop over torchvision's EfficientNet-B0 on a ready float batch."""
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0(num_classes=10).to(device)
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    if budget.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    if budget.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=budget.lr, momentum=budget.momentum, nesterov=True,
                              weight_decay=budget.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=budget.label_smoothing)
    amp = device.type == "cuda" and budget.amp
    model.train()

    def one():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return one


def cifar_subset(per_class: int, dest: Path) -> Path:
    """Extract ``per_class`` training JPEGs of each class from the shared archive into ``dest``."""
    counts: dict[str, int] = {}
    with tarfile.open(CIFAR_TAR) as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3 or parts[-3] != "train":
                continue
            if counts.get(parts[-2], 0) < per_class:
                counts[parts[-2]] = counts.get(parts[-2], 0) + 1
                out = dest / "train" / parts[-2] / parts[-1]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(m).read())
    return dest / "train"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--resolution", type=int, default=None, help="model input size (default: 64 on CPU, 224 on CUDA)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 256 on CUDA")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round and side (default: 16 on CPU, 50 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per side first (default: 3 on CPU, 20 on CUDA)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each side's best counts")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--per-class", type=int, default=500, help="CIFAR-10 training JPEGs per class to decode")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: benchmarks/results/proxy_throughput-<device>.json)")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    load_before = _loadavg()
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    res = args.resolution or (224 if cuda else 64)
    batch = args.batch_size or (256 if cuda else 32)
    steps = args.steps or (50 if cuda else 16)
    warmup = args.warmup if args.warmup is not None else (20 if cuda else 3)
    budget = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ProxyConfig),
                                                 OmegaConf.load(HERE.parent / "conf" / "proxy" / ("gpu.yaml" if cuda else "cpu.yaml"))))
    # torchvision's efficientnet_b0 has dropout 0.2 and stochastic depth 0.2: the trainer's B0 gets the same
    budget = dataclasses.replace(budget, device=str(device), batch_size=batch, dropout=0.2, drop_path=0.2)
    if cuda:
        torch.backends.cudnn.benchmark = True

    if not CIFAR_TAR.exists():
        raise SystemExit(f"the real-data comparison needs {CIFAR_TAR} (../shared/datasets)")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = cifar_subset(args.per_class, Path(tmp))
        t1 = time.perf_counter()
        data = load_data(DatasetConfig(name="imagefolder", root=str(root), val_fraction=0.02))
        t2 = time.perf_counter()
    n_images = len(data.train_y) + len(data.val_y)
    real_x, real_y = data.train_x.to(device), data.train_y.to(device)
    gen = torch.Generator(device=device).manual_seed(1)
    fake_x = torch.randint(0, 256, (4 * batch, 3, res, res), dtype=torch.uint8, generator=gen, device=device)
    fake_y = torch.randint(0, 10, (4 * batch,), generator=gen, device=device)

    sides = {
        "reference": reference_fn(budget, device, res, batch),
        "trainer": trainer_fn(budget, device, res, batch, fake_x, fake_y, steps),
        "trainer_real_data": trainer_fn(budget, device, res, batch, real_x, real_y, steps),
    }
    for fn in sides.values():
        timed(fn, warmup, batch, device)
    rounds = {k: [] for k in sides}
    for _ in range(args.rounds):
        for k, fn in sides.items():
            rounds[k].append(timed(fn, steps, batch, device))
    ips = {k: max(v) for k, v in rounds.items()}

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "device": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "resolution": res,
        "batch_size": batch,
        "steps": steps,
        "warmup": warmup,
        "rounds": args.rounds,
        "precision": "bf16 autocast" if cuda and budget.amp else "fp32",
        "channels_last": budget.channels_last,
        "images_per_s": {k: round(v, 1) for k, v in ips.items()},
        "images_per_s_median": {k: round(statistics.median(v), 1) for k, v in rounds.items()},
        "images_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
        "loadavg_1min_before_after": [load_before, _loadavg()],
        "ratio_trainer_vs_reference": round(ips["trainer"] / ips["reference"], 3),
        "ratio_real_vs_synthetic": round(ips["trainer_real_data"] / ips["trainer"], 3),
        "cifar_images": n_images,
        "cifar_extract_s": round(t1 - t0, 2),
        "cifar_decode_s": round(t2 - t1, 2),
    }
    out = args.out or HERE / "results" / f"proxy_throughput-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{result['device']} · torch {torch.__version__} · {res}px · batch {batch} · {result['precision']}"
          f"{' · channels_last' if budget.channels_last else ''} · best of {args.rounds} rounds x {steps} steps")
    print(f"| {'':38} | {'images/s':>9} | {'ratio':>6} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 8}|")
    print(f"| {'reference: torchvision efficientnet_b0':38} | {ips['reference']:9.1f} | {'1.000':>6} |")
    print(f"| {'trainer: scalesearch TrainStep (B0)':38} | {ips['trainer']:9.1f} | {result['ratio_trainer_vs_reference']:6.3f} |")
    print(f"| {'trainer, synthetic uint8 tensors':38} | {ips['trainer']:9.1f} | {'1.000':>6} |")
    print(f"| {'trainer, real CIFAR-10 JPEGs (decoded)':38} | {ips['trainer_real_data']:9.1f} | {result['ratio_real_vs_synthetic']:6.3f} |")
    print(f"decoded {n_images} CIFAR-10 JPEGs once in {result['cifar_decode_s']} s; wrote {out}")
    return result


if __name__ == "__main__":
    main()
