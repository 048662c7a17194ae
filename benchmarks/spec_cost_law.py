"""What the part law (scalesearch.scaling.model: each distinct part traced at three probe sizes, every other size from its
affine law) saves where a run counts costs: emitting a family under the measured constraint, whose resolutions are
solved by bisection (many sizes per member), and planning the default grid.

Three ways to count, each from a cold cache, in one run on this machine:

* **law** — ``spec_cost`` as it is;
* **per part, per size** — each distinct part traced with FlopCounterMode at every size it meets (what
  ``spec_cost`` did before the law; rebuilt here from the public ``ConvBNAct``/``MBConv``/``count_module``);
* **whole network, per size** — ``count_cost`` of the built network on the meta device at every size.

All three must give the same numbers (checked); the figures are wall seconds and the ratios to the law.

    python benchmarks/spec_cost_law.py          # ~1 min on 2 cores; results/spec_cost_law.json
"""

from __future__ import annotations

import functools
import platform
import time
from pathlib import Path

import torch
from torch import nn

import scalesearch.scaling.model as M
from scalesearch.scaling.cost import Cost, count_cost, count_module
from scalesearch.io import atomic_write_json
from scalesearch.plan.jobs import select_grid
from scalesearch.scaling.coefficients import Coefficients
from scalesearch.scaling.scaler import Scaler
from scalesearch.plan.space import load_space

OUT = Path(__file__).parent / "results" / "spec_cost_law.json"


def per_part_per_size():
    """spec_cost with each distinct part traced at every size (the pre-law way), cached per (part, size)."""
    @functools.lru_cache(maxsize=None)
    def part(kind, args, h, w):
        with torch.device("meta"):
            if kind == "stem":
                module = M.ConvBNAct(args[0], args[1], 3, 2)
            elif kind == "block":
                module = M.MBConv(*args)
            elif kind == "head":
                module = M.ConvBNAct(args[0], args[1], 1)
            else:
                module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(*args))
            x = torch.zeros(1, args[0], h, w)
        p, m, a, out = count_module(module, x)
        return p, m, a, (int(out.shape[-2]) if out.ndim == 4 else 1), (int(out.shape[-1]) if out.ndim == 4 else 1)

    def spec_cost(spec, resolution, num_classes=1000, in_channels=3):
        total = [0, 0, 0]

        def add(kind, args, h, w, times=1):
            p, m, a, oh, ow = part(kind, args, h, w)
            total[0], total[1], total[2] = total[0] + times * p, total[1] + times * m, total[2] + times * a
            return oh, ow

        h, w = add("stem", (in_channels, spec.stem_channels), resolution, resolution)
        cin = spec.stem_channels
        for st in spec.stages:
            oh, ow = add("block", (cin, st.out_channels, st.expand_ratio, st.kernel, st.stride, st.se_ratio), h, w)
            if st.repeats > 1:
                add("block", (st.out_channels, st.out_channels, st.expand_ratio, st.kernel, 1, st.se_ratio), oh, ow,
                    st.repeats - 1)
            h, w, cin = oh, ow, st.out_channels
        h, w = add("head", (cin, spec.head_channels), h, w)
        add("classifier", (spec.head_channels, num_classes), h, w)
        return Cost(total[0], total[1], total[2], int(resolution))

    return spec_cost


def whole_network(spec, resolution, num_classes=1000, in_channels=3):
    with torch.device("meta"):
        model = M.EfficientNet(spec, num_classes=num_classes, in_channels=in_channels)
    return count_cost(model, resolution, in_channels)


def work() -> dict:
    """The default run's counting: the grid's plan (compound space, 5 points) and the family φ = 0..7 of the paper's
    coefficients, measured constraint, base 40 px, 10 classes."""
    scaler = Scaler(base_resolution=40, num_classes=10, constraint="measured", resolution_multiple=1,
                    gamma_range=(1.0, 1.5))
    grid = select_grid(load_space("compound"), scaler, 1.0, 1, 5, True)[0]
    fam = scaler.family(Coefficients(1.2, 1.1, 1.15))
    return {"grid": [(c["candidate"], c["resolution"], c["macs"]) for c in grid],
            "family": [(m.name, m.resolution, m.macs) for m in fam]}


def timed(counter) -> tuple[float, dict]:
    original = M.spec_cost
    M.spec_cost = counter  # Scaler.shape_cost reads model.spec_cost when it counts
    M._part_law.cache_clear()
    try:
        t = time.perf_counter()
        out = work()
        return time.perf_counter() - t, out
    finally:
        M.spec_cost = original


def main() -> None:
    torch.set_num_threads(1)
    law_s, law = timed(M.spec_cost)
    part_s, part = timed(per_part_per_size())
    whole_s, whole = timed(whole_network)
    assert law == part == whole, "the three counts disagree"
    res = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "work": "default grid plan (5 points) + family φ=0..7, measured, 40 px",
           "seconds": {"law": round(law_s, 2), "per_part_per_size": round(part_s, 2),
                       "whole_network_per_size": round(whole_s, 2)},
           "ratio_to_law": {"per_part_per_size": round(part_s / law_s, 1),
                            "whole_network_per_size": round(whole_s / law_s, 1)},
           "same_numbers": True, "family": law["family"]}
    atomic_write_json(OUT, res)
    print(res)


if __name__ == "__main__":
    main()
