"""Proxy runs: train a scaled baseline for a short budget and measure how good it is.

``train_proxy(spec, resolution, data, budget)`` builds the network of a ``ModelSpec`` (a scaled
baseline) and trains it on the decoded uint8 splits of a :class:`~scalesearch.train.data.ProxyData`, moved
once to the training device. Every batch is resized to ``resolution`` there, augmented (random crop with
padding, flip) and normalised (:class:`TrainStep`), so no trial decodes or resizes on the host.

Training: SGD-nesterov or AdamW (fused; no weight decay on BN and biases), linear warm-up +
cosine or one-cycle, label smoothing; bf16 autocast on CUDA, channels_last (also on CPU, where it
is ~2x faster for this net). Metrics stay on the device inside an epoch: one host sync per epoch,
where a NaN/inf loss ends the run with ``status="diverged"``. Before each evaluation the BN
statistics are re-estimated on ``bn_recalibration`` training images ("precise BN"): running
averages lag far behind the weights in a run of a few hundred steps, which would make eval-mode
accuracy mostly noise.
On CPU the same seed gives bit-identical metrics (a per-trial ``torch.Generator`` drives
shuffling and augmentation, ``torch.manual_seed`` the initialisation, dropout and drop-path).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from typing import Callable

import torch
from torch import nn

from .data import ProxyData, augment, normalize, resize
from ..scaling.model import EfficientNet
from ..scaling.spec import ModelSpec

__all__ = ["train_proxy", "train_rung", "rung_steps", "steps_per_epoch", "epoch_count", "build_proxy_model",
           "TrainStep", "resolve_device", "recalibrate_bn", "evaluate", "train_batch"]


def train_batch(batch_size: int, n_train: int) -> int:
    """The batch a training uses: proxy.batch_size, capped at the training images (so does every timing)."""
    return max(1, min(int(batch_size), int(n_train)))


def steps_per_epoch(batch_size: int, n_train: int) -> int:
    """Optimizer steps per epoch: the ragged last batch is dropped (fixed shapes, stable BN)."""
    return max(1, int(n_train) // train_batch(batch_size, n_train))


def epoch_count(budget, n_train: int) -> int:
    """The epochs a training of ``budget`` runs on ``n_train`` images (``budget.steps``: rounded up to whole
    epochs): the one place this arithmetic lives."""
    spe = steps_per_epoch(budget.batch_size, n_train)
    return math.ceil((budget.steps or budget.epochs * spe) / spe)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"proxy.device={name!r} but CUDA is not available here; allowed: cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"proxy.device={name!r} is not a device; allowed: auto, cpu, cuda, cuda:N") from None


def build_proxy_model(spec: ModelSpec, num_classes: int, in_channels: int, budget) -> EfficientNet:
    """The network of ``spec`` with the budget's dropout and drop-path (None: the spec's)."""
    if budget.dropout is not None:
        spec = replace(spec, dropout=budget.dropout)
    if budget.drop_path is not None:
        spec = replace(spec, drop_path=budget.drop_path)
    return EfficientNet(spec, num_classes=num_classes, in_channels=in_channels)


def _optimizer(model: nn.Module, budget) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": budget.weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]  # BN and biases
    if budget.optimizer == "sgd":  # fused kernels: CPU and CUDA (on CPU ~4x faster steps than the default)
        return torch.optim.SGD(groups, lr=budget.lr, momentum=budget.momentum, nesterov=True, fused=True)
    if budget.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=budget.lr, fused=True)
    raise ValueError(f"proxy.optimizer={budget.optimizer!r} is unknown; allowed: sgd, adamw")


def _schedule(opt: torch.optim.Optimizer, budget, total_steps: int, steps_per_epoch: int):
    S = torch.optim.lr_scheduler
    warm = min(total_steps - 1, round(budget.warmup_epochs * steps_per_epoch))
    if budget.schedule == "onecycle":
        if total_steps < 2:
            raise ValueError(f"proxy.schedule=onecycle with {total_steps} step; allowed: a budget of >= 2 steps")
        pct = min(max(warm, 1.5), total_steps - 0.5) / total_steps  # both phases at least a step long
        return S.OneCycleLR(opt, max_lr=budget.lr, total_steps=total_steps, pct_start=pct)
    if budget.schedule == "constant":  # the race's trunk: warm-up, then constant (its rungs cool down from copies)
        return S.LambdaLR(opt, lambda i: min(1.0, (i + 1) / (warm + 1)))
    if budget.schedule != "cosine":
        raise ValueError(f"proxy.schedule={budget.schedule!r} is unknown; allowed: cosine, onecycle")
    cosine = S.CosineAnnealingLR(opt, T_max=max(1, total_steps - warm))
    if warm < 1:
        return cosine
    return S.SequentialLR(opt, [S.LinearLR(opt, 1 / (warm + 1), 1.0, total_iters=warm), cosine], milestones=[warm])


class TrainStep:
    """The proxy's training step on the device: ``step(x_uint8, y) -> loss`` (a 0-d tensor, no
    host sync) resizes a uint8 batch to ``resolution``, augments, normalises, runs forward (bf16
    autocast on CUDA) and backward, and steps optimizer and schedule. Benchmarks time this object,
    so they measure the trainer itself."""

    def __init__(self, model: nn.Module, budget, device: torch.device, resolution: int, total_steps: int,
                 steps_per_epoch: int, generator: torch.Generator):
        self.device, self.resolution, self.gen = device, resolution, generator
        self.amp = device.type == "cuda" and budget.amp
        self.channels_last = budget.channels_last
        self.augment = budget.augment
        self.pad = max(1, round(4 * resolution / 32))
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        self.model = model.to(device, memory_format=layout)
        compile_on = budget.compile == "on" or (budget.compile == "auto" and device.type == "cuda")
        if budget.compile not in ("off", "auto", "on"):
            raise ValueError(f"proxy.compile={budget.compile!r}; allowed: off, auto, on")
        self.forward = torch.compile(self.model) if compile_on else self.model
        self.opt = _optimizer(self.model, budget)
        self.sched = _schedule(self.opt, budget, total_steps, steps_per_epoch)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=budget.label_smoothing)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 batch at any size → normalised float batch at ``resolution`` (augmented if ``train``)."""
        x = resize(x, self.resolution)
        if train and self.augment:
            x = augment(x, self.gen, self.pad)
        x = normalize(x)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x, train=True)
        with self.autocast():
            loss = self.loss_fn(self.forward(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss.detach()


@torch.no_grad()
def recalibrate_bn(step: TrainStep, x: torch.Tensor, batch_size: int) -> None:
    """Re-estimate every BatchNorm's running statistics as a plain average over the batches of
    ``x`` (un-augmented), with dropout and drop-path off."""
    bns = [m for m in step.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    step.model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
        bn.train()
    for i in range(0, len(x), batch_size):
        with step.autocast():
            step.model(step.prepare(x[i : i + batch_size], train=False))
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    step.model.train()


@torch.no_grad()
def evaluate(step: TrainStep, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of the model in eval mode; one host sync."""
    step.model.eval()
    correct = torch.zeros((), device=step.device)
    loss = torch.zeros((), device=step.device)
    for i in range(0, len(x), batch_size):
        with step.autocast():
            out = step.model(step.prepare(x[i : i + batch_size], train=False)).float()
        yb = y[i : i + batch_size]
        correct += (out.argmax(1) == yb).sum()
        loss += nn.functional.cross_entropy(out, yb, reduction="sum")
    step.model.train()
    n = max(1, len(x))
    return correct.item() / n, loss.item() / n


def train_proxy(
    spec: ModelSpec,
    resolution: int,
    data: ProxyData,
    budget,
    *,
    seed: int = 0,
    report: Callable[[dict], None] | None = None,
) -> dict:
    """Train the network of ``spec`` at ``resolution``² on ``data`` for ``budget`` (a ``ProxyConfig``) and
    return its metrics.

    ``report`` gets ``{epoch, train_loss, images_per_s}`` after every epoch, with ``accuracy`` and ``loss`` after
    the evaluated ones (every ``budget.eval_every`` epochs; 0: the last only); the result
    adds ``wall_s, epochs, steps, status, resolution``. The cost of the network is not measured here: the
    caller knows it (:func:`scalesearch.scaling.model.spec_cost`).
    """
    t_start = time.perf_counter()
    res = int(resolution)
    _check_inputs(res, budget)
    device, gen, model, train_x, train_y = _start_training(spec, data, budget, seed)
    val_x, val_y = data.val_x.to(device), data.val_y.to(device)
    n = len(train_x)
    bs, spe, epochs = train_batch(budget.batch_size, n), steps_per_epoch(budget.batch_size, n), epoch_count(budget, n)
    total_steps = budget.steps or budget.epochs * spe
    step = TrainStep(model, budget, device, res, total_steps, spe, gen)
    calib_x = train_x[torch.randperm(n, generator=gen, device=device)[: budget.bn_recalibration]]

    status, done, train_time, metrics = "ok", 0, 0.0, {}
    for epoch in range(1, epochs + 1):
        k = min(spe, total_steps - done)
        train_loss, dt = _train_epoch(step, train_x, train_y, gen, bs, k)
        done, train_time = done + k, train_time + dt
        last = epoch == epochs
        metrics = {"epoch": epoch, "train_loss": train_loss, "images_per_s": k * bs / dt}
        if not math.isfinite(train_loss):
            status = "diverged"
            metrics.update(accuracy=0.0, loss=float("nan"))
        elif last or (budget.eval_every and epoch % budget.eval_every == 0):
            status = _evaluate_into(metrics, step, calib_x, val_x, val_y, budget.eval_batch_size)
        if report is not None:
            report(dict(metrics))
        if status != "ok":
            break
        if budget.fault.epoch_sleep > 0:
            time.sleep(budget.fault.epoch_sleep)

    return {
        **metrics,
        "images_per_s": done * bs / train_time,
        "epochs": metrics["epoch"],
        "steps": done,
        "status": status,
        "resolution": res,
        "wall_s": time.perf_counter() - t_start,
    }


def _check_inputs(res: int, budget) -> None:
    """A trainable resolution and a budget of at least one epoch, step and image per batch."""
    if res < 16:
        raise ValueError(f"resolution={res} is below 16; allowed: >= 16 (raise dataset.base_resolution)")
    if budget.epochs < 1 or (budget.steps is not None and budget.steps < 1) or budget.batch_size < 1:
        raise ValueError(f"proxy budget epochs={budget.epochs}, steps={budget.steps}, batch_size={budget.batch_size}; "
                         "allowed: each >= 1 (steps may be null)")


def _start_training(spec: ModelSpec, data: ProxyData, budget, seed: int):
    """The device, threads and seeds of a training; (device, generator, model, train_x, train_y on the device)."""
    device = resolve_device(budget.device)
    if budget.threads:
        torch.set_num_threads(int(budget.threads))
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = build_proxy_model(spec, data.num_classes, data.in_channels, budget)
    return device, gen, model, data.train_x.to(device), data.train_y.to(device)


def _train_epoch(step: TrainStep, train_x, train_y, gen, bs: int, k: int) -> tuple[float, float]:
    """``k`` steps over a fresh permutation: (the epoch's mean training loss, its seconds); one host sync."""
    t0 = time.perf_counter()
    perm = torch.randperm(len(train_x), generator=gen, device=step.device)
    loss_sum = torch.zeros((), device=step.device)
    for i in range(k):
        idx = perm[i * bs : (i + 1) * bs]
        loss_sum += step(train_x[idx], train_y[idx])
    train_loss = (loss_sum / k).item()  # the epoch's one host sync
    return train_loss, time.perf_counter() - t0


def _evaluate_into(metrics: dict, step: TrainStep, calib_x, val_x, val_y, batch_size: int) -> str:
    """Recalibrate BN (on ``calib_x``, if any), evaluate, add accuracy and loss to ``metrics``; the status."""
    if len(calib_x):
        recalibrate_bn(step, calib_x, batch_size)
    metrics["accuracy"], metrics["loss"] = evaluate(step, val_x, val_y, batch_size)
    return "ok" if math.isfinite(metrics["loss"]) else "diverged"


# ---------------------------------------------------------------- the race's rungs: one trunk, a cooldown per rung
def rung_steps(total_steps: int, cooldown: float) -> tuple[int, int]:
    """(trunk steps, cooldown steps) of a rung of ``total_steps``: the trunk at constant learning rate for the first
    1 − ``cooldown`` of the steps, then a linear cooldown to 0 (Zhai et al. 2022, §3.5)."""
    total = max(2, int(total_steps))
    cool = min(total - 1, max(1, round(cooldown * total)))
    return total - cool, cool


class _NoSchedule:
    def step(self):
        pass


def train_rung(spec: ModelSpec, resolution: int, data: ProxyData, budget, *, seed: int, trunk_steps: int,
               cooldown_steps: int, start: dict | None = None, on_trunk: Callable[[dict], None] | None = None) -> dict:
    """One rung of a race: train the trunk (warm-up, then constant learning rate) to ``trunk_steps`` — continuing
    from ``start`` (the trunk state a lower rung saved) when given —, hand the trunk's state to ``on_trunk``, then
    train a cooldown branch of ``cooldown_steps`` (learning rate linearly to 0) and evaluate it.

    The trunk's state carries the model, optimizer, schedule, both random generators and the position in the
    epoch's permutation, so a continued trunk is bit-identical on CPU to one trained from scratch to the same step.
    Returns the metrics of :func:`train_proxy` plus ``continued_from`` (trunk steps resumed, 0: from scratch)."""
    t_start = time.perf_counter()
    budget = replace(budget, schedule="constant")
    device, gen, model, train_x, train_y = _start_training(spec, data, budget, seed)
    n, bs = len(train_x), train_batch(budget.batch_size, len(train_x))
    spe = steps_per_epoch(budget.batch_size, n)
    step = TrainStep(model, budget, device, int(resolution), trunk_steps + cooldown_steps, spe, gen)
    calib_x = train_x[torch.randperm(n, generator=gen, device=device)[: budget.bn_recalibration]]
    pos = {"done": 0, "perm": None}
    if start is not None:
        _load_trunk(step, gen, pos, start)
    begun = pos["done"]
    status = _train_steps(step, train_x, train_y, gen, pos, trunk_steps, bs, spe)
    if on_trunk is not None and status == "ok":
        on_trunk(_trunk_state(step, gen, pos))
    if status == "ok":
        step.sched, lr0 = _NoSchedule(), [g["lr"] for g in step.opt.param_groups]
        for i in range(cooldown_steps):
            for g, lr in zip(step.opt.param_groups, lr0):
                g["lr"] = lr * (1.0 - (i + 1) / cooldown_steps)
            status = _train_steps(step, train_x, train_y, gen, pos, pos["done"] + 1, bs, spe)
            if status != "ok":
                break
    metrics = {"accuracy": 0.0, "loss": float("nan")}
    if status == "ok":
        if len(calib_x):
            recalibrate_bn(step, calib_x, budget.eval_batch_size)
        metrics["accuracy"], metrics["loss"] = evaluate(step, data.val_x.to(device), data.val_y.to(device),
                                                        budget.eval_batch_size)
        status = "ok" if math.isfinite(metrics["loss"]) else "diverged"
    done = pos["done"]
    return {**metrics, "epoch": math.ceil(done / spe), "epochs": math.ceil(done / spe), "steps": done - begun,
            "status": status, "resolution": int(resolution), "continued_from": begun,
            "images_per_s": (done - begun) * bs / max(1e-9, time.perf_counter() - t_start),
            "wall_s": time.perf_counter() - t_start}


def _train_steps(step: TrainStep, x, y, gen, pos: dict, stop: int, bs: int, spe: int) -> str:
    """Train from ``pos['done']`` to step ``stop``, one permutation per epoch (drawn when an epoch starts);
    "diverged" at a non-finite loss (checked once per epoch and at the end)."""
    loss = torch.zeros((), device=step.device)
    while pos["done"] < stop:
        k = pos["done"] % spe
        if k == 0 or pos["perm"] is None:
            pos["perm"] = torch.randperm(len(x), generator=gen, device=step.device)
        idx = pos["perm"][k * bs : (k + 1) * bs]
        loss = step(x[idx], y[idx])
        pos["done"] += 1
        if pos["done"] % spe == 0 and not math.isfinite(loss.item()):
            return "diverged"
    return "ok" if math.isfinite(float(loss)) else "diverged"


def _trunk_state(step: TrainStep, gen, pos: dict) -> dict:
    cuda = torch.cuda.get_rng_state(step.device) if step.device.type == "cuda" else None
    return {"model": step.model.state_dict(), "opt": step.opt.state_dict(), "sched": step.sched.state_dict(),
            "gen": gen.get_state(), "rng": torch.get_rng_state(), "cuda_rng": cuda, "done": pos["done"],
            "perm": pos["perm"]}


def _load_trunk(step: TrainStep, gen, pos: dict, state: dict) -> None:
    step.model.load_state_dict(state["model"])
    step.opt.load_state_dict(state["opt"])
    step.sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and step.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], step.device)
    pos.update(done=int(state["done"]), perm=state["perm"])
