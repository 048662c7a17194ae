"""The model family as data: rounding rules, the B0 table, exact cost against torchvision and against
the whole built model, the scaling coefficients and the family generator (nominal and measured),
and family.json round trips.

Oracles: torchvision's EfficientNet (parameter counts and FlopCounterMode MACs of an independent
implementation), FlopCounterMode on the whole model (for the part-by-part ``spec_cost``), and hand
arithmetic (rounding, block distribution)."""

import json
import math
import time

import pytest
import torch
import torchvision

from scalesearch import (B0, OFFICIAL, PAPER, Coefficients, ModelSpec, StageSpec, build_model, build_spec, count_cost,
                         family, load_family, round_channels, round_repeats, scale, spec_cost, to_torchvision)
from scalesearch.apps.generate import write_family
from scalesearch.scaling.model import EfficientNet, model_cost, timm_arch_def
from scalesearch.scaling.coefficients import check_member_dims, dropout_for_phi, fit_phi, member_name
from scalesearch.scaling.spec import official, scale_depths

B0_REPEATS = [1, 2, 2, 3, 3, 4, 1]

# torchvision's documented parameter counts (torchvision.models.EfficientNet_B*_Weights.meta["num_params"])
TORCHVISION_PARAMS = {"b0": 5288548, "b1": 7794184, "b2": 9109994, "b3": 12233232, "b4": 19341616, "b5": 30389784,
                      "b6": 43040704, "b7": 66347960}


@pytest.fixture
def one_thread():
    """Real forwards on 1 thread (the 2 cores are shared: 2 threads oversubscribe them)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def meta_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def whole_model_cost(spec: ModelSpec, resolution: int, num_classes: int = 1000, in_channels: int = 3):
    """FlopCounterMode over the whole built network (meta device: shapes only)."""
    with torch.device("meta"):
        model = EfficientNet(spec, num_classes=num_classes, in_channels=in_channels)
    return count_cost(model, resolution, in_channels)


# ---------------------------------------------------------------- rounding
def test_round_channels_tf_rules():
    assert round_channels(32) == 32
    assert round_channels(35.2) == 32  # 32 * 1.1: nearest multiple of 8
    assert round_channels(36) == 40  # ties round up
    assert round_channels(3) == 8  # never below the divisor
    # the 90 % rule: nearest multiple would lose > 10 %, so go one step up
    assert round_channels(12, divisor=8) == 16  # int(12+4)//8*8 = 16
    assert round_channels(8.8) == 8  # 8 >= 0.9 * 8.8
    assert round_channels(9) == 16  # 8 < 0.9 * 9: one step up
    assert round_channels(19, divisor=16) == 32  # nearest is 16 < 0.9 * 19 = 17.1 -> 32
    assert round_channels(320 * 1.03) == 328


def test_round_repeats_ceil_min_one_and_float_noise():
    assert round_repeats(3, 1.0) == 3
    assert round_repeats(3, 1.1) == 4  # ceil(3.3)
    assert round_repeats(1, 3.1) == 4
    assert round_repeats(4, 1.0001) == 5
    assert round_repeats(1, 0.1) == 1  # at least one block
    # float noise must not add a block: 25 * 2.2 = 55.00000000000001, 50 * 1.1 = 55.00000000000001
    assert 25 * 2.2 > 55 and round_repeats(25, 2.2) == 55
    assert 50 * 1.1 > 55 and round_repeats(50, 1.1) == 55


def test_scale_depths_stage_is_ceil_per_stage():
    assert scale_depths(B0_REPEATS, 1.2, "stage") == [2, 3, 3, 4, 4, 5, 2]  # ceil(1.2 r) each
    assert scale_depths(B0_REPEATS, 3.1, "stage") == [4, 7, 7, 10, 10, 13, 4]  # the official B7
    assert scale_depths(B0_REPEATS, 0.5, "stage") == [1, 1, 1, 2, 2, 2, 1]
    with pytest.raises(ValueError, match="depth_rounding='ceil' is unknown; allowed: stage, total"):
        scale_depths(B0_REPEATS, 1.2, "ceil")


def test_scale_depths_total_hand_examples():
    # B0 at depth 1.2: total round(16 * 1.2) = 19 blocks. Shares r * 19/16 =
    # [1.19, 2.38, 2.38, 3.56, 3.56, 4.75, 1.19]; floors [1,2,2,3,3,4,1] = 16; the 3 blocks left go to the
    # largest remainders: stage 5 (.75), then the .5625 tie of stages 3 and 4, later stage first (4, then 3)
    assert scale_depths(B0_REPEATS, 1.2, "total") == [1, 2, 2, 4, 4, 5, 1]
    # depth 1.1: round(17.6) = 18; shares r * 18/16 = [1.125, 2.25, 2.25, 3.375, 3.375, 4.5, 1.125]: the 2 left go
    # to stage 5 (.5) and to the later of the .375 tie (stage 4)
    assert scale_depths(B0_REPEATS, 1.1, "total") == [1, 2, 2, 3, 4, 5, 1]
    # depth 2: shares are whole numbers, the same as ceil per stage
    assert scale_depths(B0_REPEATS, 2.0, "total") == [2, 4, 4, 6, 6, 8, 2]
    # depth 0.5: 8 blocks; shares [.5, 1, 1, 1.5, 1.5, 2, .5] floored with the 1-block minimum sum to 8 already
    assert scale_depths(B0_REPEATS, 0.5, "total") == [1, 1, 1, 1, 1, 2, 1]
    # depth 0.25: round(4) is below the 7 stages: one block each
    assert scale_depths(B0_REPEATS, 0.25, "total") == [1] * 7
    # ties go to the later stage
    assert scale_depths([1, 1], 1.5, "total") == [1, 2]
    assert scale_depths([2, 2, 2, 2], 1.125, "total") == [2, 2, 2, 3]
    # the 1-block minimum overshoots (8 > round(12 * 0.5) = 6): the blocks come off the deepest stage
    assert scale_depths([1, 1, 1, 1, 8], 0.5, "total") == [1, 1, 1, 1, 2]


def test_scale_depths_total_keeps_the_total_and_the_shares():
    for depth in [round(0.3 + 0.05 * k, 2) for k in range(155)] + [1.2**p for p in range(1, 9)]:
        out = scale_depths(B0_REPEATS, depth, "total")
        assert sum(out) == max(7, round(16 * depth)) and min(out) >= 1, depth
        if depth >= 1:  # no stage is below its share's floor: each gets floor or ceil of r * total / 16
            shares = [r * sum(out) / 16 for r in B0_REPEATS]
            assert all(math.floor(s) <= o <= math.ceil(s) for o, s in zip(out, shares)), (depth, out, shares)
            # the stages rounded up are exactly those with the largest remainders
            up = [s - math.floor(s) for o, s in zip(out, shares) if o > s]
            down = [s - math.floor(s) for o, s in zip(out, shares) if o == math.floor(s) and o != s]
            assert not up or not down or min(up) >= max(down), (depth, out, shares)


def test_scale_total_vs_stage_and_bad_multipliers():
    assert [s.repeats for s in scale(B0, 1.2, 1.0, depth_rounding="total").stages] == [1, 2, 2, 4, 4, 5, 1]
    assert [s.repeats for s in scale(B0, 1.2, 1.0).stages] == [2, 3, 3, 4, 4, 5, 2]  # "stage" is the default
    with pytest.raises(ValueError, match="depth=0"):
        scale(B0, 0, 1.0)
    with pytest.raises(ValueError, match="width=-1"):
        scale(B0, 1.0, -1)


def test_b0_spec_matches_table1():
    assert [(s.expand_ratio, s.kernel, s.stride, s.out_channels, s.repeats) for s in B0.stages] == [
        (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    assert all(s.se_ratio == 0.25 for s in B0.stages)
    assert (B0.stem_channels, B0.head_channels, B0.num_blocks) == (32, 1280, 16)
    s = scale(B0, depth=3.1, width=2.0)
    assert s.stem_channels == 64 and s.head_channels == 2560
    assert [st.repeats for st in s.stages] == [4, 7, 7, 10, 10, 13, 4]
    assert [st.out_channels for st in s.stages] == [32, 48, 80, 160, 224, 384, 640]


def test_official_table_lives_in_spec():
    assert official("efficientnet-b3") == official("B3") == OFFICIAL["b3"]
    assert (OFFICIAL["b3"].width, OFFICIAL["b3"].depth, OFFICIAL["b3"].resolution, OFFICIAL["b3"].dropout) == (
        1.2, 1.4, 300, 0.3)
    with pytest.raises(ValueError, match="unknown official variant 'b9'; allowed: b0, b1"):
        official("b9")


def test_model_structure_readable_names():
    m = build_model("b0", num_classes=10)
    names = dict(m.named_modules())
    for key in ["stem.conv", "stages.0.0.dwise.conv", "stages.3.1.expand.conv", "stages.3.1.se.fc1", "stages.6.0.project.bn",
                "head.conv", "classifier"]:
        assert key in names, key
    bn = names["stem.bn"]
    assert bn.eps == 1e-3 and bn.momentum == 0.01
    # stochastic depth grows linearly over the 16 blocks: 0 at the first, 0.2*15/16 at the last
    assert names["stages.6.0"].residual is False
    assert names["stages.5.3.drop_path"].p == pytest.approx(0.2 * 14 / 16)
    assert names["stages.1.1.drop_path"].p == pytest.approx(0.2 * 2 / 16)
    assert m.dropout.p == 0.2 and isinstance(names["stem.act"], torch.nn.SiLU)


# ---------------------------------------------------------------- cost against independent counts
@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_variants_match_torchvision(name):
    """Ours and torchvision's efficientnet_bN (built on the meta device, shapes only): the same parameter
    count (torchvision's documented one), the same MACs and conv activations at the variant's resolution."""
    res = OFFICIAL[name].resolution
    with torch.device("meta"):
        ours = build_model(name, num_classes=1000)
        ref = getattr(torchvision.models, f"efficientnet_{name}")(weights=None)
    assert meta_params(ours) == meta_params(ref) == TORCHVISION_PARAMS[name]
    a, b = count_cost(ours, res), count_cost(ref, res)
    assert a == b and a.macs > 0 and a.activations > 0
    assert ours.dropout.p == OFFICIAL[name].dropout
    # the part-by-part count agrees with both
    assert spec_cost(build_spec(name), res) == a


def test_cost_counts_macs_and_activations_on_a_tiny_net():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5))
    c = count_cost(net, 8)
    assert c.macs == 3 * 4 * 9 * 64 + 256 * 5
    assert c.activations == 4 * 64
    assert c.params == 3 * 4 * 9 + 256 * 5 + 5


# a NAS-style spec: expansion 1 on a stage whose input and output widths differ, no SE on some stages, an SE
# ratio of 0.5, kernel 7, a residual first block (stride 1, 80 -> 80), a lone block, another stem/head width
NAS_SPEC = ModelSpec(
    stages=(
        StageSpec(1, 3, 1, 16, 1, 0.0),
        StageSpec(4, 5, 2, 24, 3, 0.25),
        StageSpec(1, 5, 2, 40, 2, 0.25),
        StageSpec(6, 3, 2, 80, 1, 0.0),
        StageSpec(6, 7, 1, 80, 2, 0.5),
        StageSpec(4, 3, 2, 192, 4, 0.25),
    ),
    stem_channels=24,
    head_channels=960,
)


@pytest.mark.parametrize(
    "spec, resolution, num_classes, in_channels",
    [
        (B0, 224, 1000, 3),
        (build_spec("b3"), 300, 1000, 3),
        (build_spec("b7"), 600, 1000, 3),
        (scale(B0, 8.0, 1.0), 32, 10, 3),
        (scale(B0, 0.5, 0.6, depth_rounding="total"), 37, 10, 1),
        (NAS_SPEC, 50, 7, 3),
    ],
    ids=["b0@224", "b3@300", "b7@600", "depth8@32", "small-gray@37", "nas@50"],
)
def test_spec_cost_equals_the_whole_model(spec, resolution, num_classes, in_channels):
    """The part-by-part count (stem, first block, one repeated block x (repeats - 1), head, classifier) equals
    FlopCounterMode over the whole built network, for every cost."""
    whole = whole_model_cost(spec, resolution, num_classes, in_channels)
    assert spec_cost(spec, resolution, num_classes, in_channels) == whole
    assert whole.params == meta_params(EfficientNet(spec, num_classes, in_channels))


@pytest.mark.parametrize("resolution", [17, 18, 23, 31, 32, 33, 47, 64, 71, 100])
def test_spec_cost_law_holds_at_every_size(resolution):
    """Each part's counts follow from three probe sizes (model._part_law): at odd and even sizes, ones whose
    stride-2 outputs round up, and sizes far from the probes, the total equals the whole built network's."""
    spec = scale(B0, 1.3, 1.2)
    assert spec_cost(spec, resolution, 10) == whole_model_cost(spec, resolution, 10, 3)


def test_spec_cost_of_a_very_deep_spec_does_not_build_it():
    """A guard, not a benchmark: 2048 blocks would take many seconds to build and trace; the part-by-part count
    measures each distinct part once. A resolution no other test uses, so nothing is cached."""
    deep = scale(B0, 128.0, 1.0)
    assert deep.num_blocks == 2048
    t = time.perf_counter()
    c = spec_cost(deep, 61, 10)
    assert time.perf_counter() - t < 2.0
    # linear in the repeated blocks: (128x deep) - (64x deep) = 64 x (one of each stage's repeated blocks)
    half = spec_cost(scale(B0, 64.0, 1.0), 61, 10)
    one_more = spec_cost(scale(B0, 65.0, 1.0), 61, 10)
    assert c.params - half.params == 64 * (one_more.params - half.params)
    assert c.macs - half.macs == 64 * (one_more.macs - half.macs)


def test_model_cost_on_a_real_device_equals_the_meta_count(one_thread):
    kwargs = {"depth": 2.0, "width": 1.2}
    real = count_cost(build_model(in_channels=1, num_classes=10, **kwargs), 64, 1)  # a real CPU forward
    assert model_cost(64, 1, num_classes=10, **kwargs) == real
    assert model_cost(224, name="b0") == spec_cost(B0, 224)
    assert model_cost(64, depth=1.2, depth_rounding="total", num_classes=10) == spec_cost(
        scale(B0, 1.2, 1.0, "total"), 64, 10)


def test_forward_backward_at_an_odd_resolution(one_thread):
    torch.manual_seed(0)
    m = build_model(width=1.1, depth=1.2, num_classes=10)
    x = torch.randn(2, 3, 37, 37)
    out = m(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert m.stem.conv.weight.grad is not None
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, 37, 37)).shape == (1, 10)


def test_unknown_official_name():
    with pytest.raises(ValueError, match="unknown official variant 'b9'"):
        build_model("b9")


# ---------------------------------------------------------------- spec as data
def test_model_spec_dict_round_trip():
    for spec in (B0, NAS_SPEC, build_spec("b5")):
        d = json.loads(json.dumps(spec.to_dict()))
        assert ModelSpec.from_dict(d) == spec
    # integral floats are accepted for integer keys (JSON from other tools), and become ints
    d = B0.to_dict()
    d["stages"][0]["repeats"] = 1.0
    assert ModelSpec.from_dict(d) == B0 and isinstance(ModelSpec.from_dict(d).stages[0].repeats, int)
    # se_ratio is optional per stage
    del d["stages"][0]["se_ratio"]
    assert ModelSpec.from_dict(d).stages[0].se_ratio == 0.25


def _stage0(**change):
    d = B0.to_dict()
    d["stages"][0].update(change)
    return d


@pytest.mark.parametrize(
    "value, message",
    [
        ([1, 2, 3], r"^member b2: a model spec must be a mapping with 'stages', got list"),
        ({}, r"^member b2: 'stages' is missing or empty"),
        ({"stages": []}, r"^member b2: 'stages' is missing or empty"),
        (_stage0(repeats=2.5), r"^member b2 stage 0: repeats=2\.5; allowed: an integer >= 1"),
        (_stage0(repeats=0), r"^member b2 stage 0: repeats=0; allowed: an integer >= 1"),
        (_stage0(kernel=True), r"^member b2 stage 0: kernel=True; allowed: an integer"),
        (_stage0(se_ratio="big"), r"^member b2 stage 0: se_ratio='big'; allowed: a number >= 0"),
        (_stage0(width=3), r"^member b2 stage 0: keys .*'width'.*; allowed: expand_ratio"),
        ({**B0.to_dict(), "stages": [B0.to_dict()["stages"][0], 7]}, r"^member b2 stage 1: 7 is not a mapping"),
        ({**B0.to_dict(), "depth": 2}, r"^member b2: unknown keys \['depth'\]"),
        ({**B0.to_dict(), "dropout": float("nan")}, r"^member b2: dropout=nan; allowed: a number >= 0"),
    ],
    ids=["list", "empty", "no-stages", "repeats-2.5", "repeats-0", "bool", "string", "stage-key", "stage-not-dict",
         "unknown-key", "nan"],
)
def test_model_spec_from_dict_one_line_errors(value, message):
    with pytest.raises(ValueError, match=message) as e:
        ModelSpec.from_dict(value, where="member b2")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- coefficients
def test_coefficients_constraint_and_negative_phi():
    c = Coefficients(1.2, 1.1, 1.15)
    assert c.product == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert c.satisfies(2.0, 0.1)
    assert not c.satisfies(2.0, 0.05)
    with pytest.raises(ValueError, match="outside target 2.0"):
        c.check(2.0, 0.05)
    with pytest.raises(ValueError, match="beta=0.9 is below 1"):
        Coefficients(1.2, 0.9, 1.1)
    with pytest.raises(ValueError, match="not a number"):
        Coefficients("x", 1.1, 1.1)
    with pytest.raises(ValueError, match="not a number"):
        Coefficients(True, 1.1, 1.1)
    assert c.multipliers(2) == pytest.approx((1.44, 1.21, 1.3225))
    # below B0: phi -1 divides by each coefficient, and phi and -phi are inverses
    assert c.multipliers(-1) == pytest.approx((1 / 1.2, 1 / 1.1, 1 / 1.15))
    up, down = c.multipliers(1.5), c.multipliers(-1.5)
    assert [u * d for u, d in zip(up, down)] == pytest.approx([1, 1, 1])


def test_dropout_grows_like_the_official_table():
    assert [dropout_for_phi(p) for p in range(8)] == [OFFICIAL[f"b{p}"].dropout for p in range(8)]
    assert [dropout_for_phi(p) for p in (-0.5, -1, -3, -10)] == [0.2] * 4  # below B0: B0's dropout
    assert dropout_for_phi(20) == 0.5  # capped


def test_member_names():
    assert [member_name(p) for p in (0, 3, 3.0, -1, -2.0, 1.5, -0.5)] == ["b0", "b3", "b3", "b-1", "b-2", "phi1.5",
                                                                         "phi-0.5"]


def test_check_member_dims_errors():
    check_member_dims(B0, 0.25, 0.5, 16, "ok")  # every minimum exactly: allowed
    with pytest.raises(ValueError, match=r"^phi=-9: depth multiplier 0\.200 leaves the deepest stage \(4 blocks\) below one "
                                         r"block; allowed: depth >= 0\.250"):
        check_member_dims(B0, 0.2, 1.0, 224, "phi=-9")
    with pytest.raises(ValueError, match=r"width multiplier 0\.450 takes the narrowest stage \(16 channels\) below 8; "
                                         r"allowed: width >= 0\.500"):
        check_member_dims(B0, 1.0, 0.45, 224, "x")
    with pytest.raises(ValueError, match=r"resolution 15\.9 px is below 16; allowed: >= 16 px"):
        check_member_dims(B0, 1.0, 1.0, 15.9, "x")


# ---------------------------------------------------------------- the family
def test_formula_family_cost_grows_monotonically():
    fam = family(Coefficients(1.2, 1.1, 1.15), base_resolution=224, num_classes=1000)
    assert [m.name for m in fam] == [f"b{i}" for i in range(8)]
    macs = [m.macs for m in fam]
    params = [m.params for m in fam]
    assert macs == sorted(macs) and len(set(macs)) == 8
    assert params == sorted(params)
    assert fam[0].macs_ratio == 1.0 and fam[0].resolution == 224 and fam[0].activations_ratio == 1.0
    assert all(m.resolution % 8 == 0 and m.constraint == "nominal" for m in fam)
    assert fam[3].resolution == round(224 * 1.15**3 / 8) * 8
    # each member is B0 scaled by alpha^phi, beta^phi with the TF rounding ("stage"), measured as built
    for m in fam:
        spec = scale(B0, 1.2**m.phi, 1.1**m.phi)
        assert m.model_spec.stages == spec.stages and m.dropout == m.model_spec.dropout == dropout_for_phi(m.phi)
        if m.phi in (0, 3):
            whole = whole_model_cost(m.model_spec, m.resolution)
            assert (m.params, m.macs, m.activations) == (whole.params, whole.macs, whole.activations)
    # measured MACs track the ideal product^phi (rounding distorts, but within 35 %)
    for m in fam[1:]:
        assert m.ideal_ratio == pytest.approx(1.92**m.phi, rel=1e-3)
        assert 0.75 < m.macs_ratio / m.ideal_ratio < 1.35


def test_official_family_with_fitted_phi():
    fam = family(Coefficients(1.2, 1.1, 1.15), mode="official", phis=[0, 1, 3, 7])
    b0, b1, b3, b7 = fam
    assert b0.phi_fit == 0 and b0.params == TORCHVISION_PARAMS["b0"] and b7.params == TORCHVISION_PARAMS["b7"]
    assert b3.resolution == 300 and b3.width_mult == 1.2 and b3.depth_mult == 1.4 and b3.dropout == 0.3
    with torch.device("meta"):
        tv_b7 = torchvision.models.efficientnet_b7(weights=None)
    assert b7.macs == count_cost(tv_b7, 600).macs
    assert all(m.constraint == "official" for m in fam)
    # the fitted phi is increasing and close to the index for the published coefficients
    assert 0 < b1.phi_fit < b3.phi_fit < b7.phi_fit
    # the official table under-scales: B3 is about phi 2 of (1.2, 1.1, 1.15), B7 about 5
    assert 1.5 < b3.phi_fit < 3 and 4 < b7.phi_fit < 7
    assert fit_phi(1.2**2, 1.1**2, 1.15**2, Coefficients(1.2, 1.1, 1.15)) == pytest.approx(2)


def test_family_rejects_bad_arguments():
    with pytest.raises(ValueError, match="base_resolution=8"):
        family(base_resolution=8)
    with pytest.raises(ValueError, match="mode='x'"):
        family(mode="x")
    with pytest.raises(ValueError, match="phi=9"):
        family(mode="official", phis=[9])
    with pytest.raises(ValueError, match=r"^phis=\[\] is empty; allowed: a non-empty list"):
        family(phis=[])
    with pytest.raises(ValueError, match="constraint='exact' is unknown; allowed: measured, nominal"):
        family(constraint="exact")
    with pytest.raises(ValueError, match="cost='latency' is measured on a device, but no device measurer was given"):
        family(cost="latency")
    with pytest.raises(ValueError, match=r"phi=-40 \(b-40\): depth multiplier"):
        family(phis=[-40])


def test_family_below_b0():
    fam = family(PAPER, base_resolution=224, phis=[-2, -1, 0], num_classes=1000)
    assert [m.name for m in fam] == ["b-2", "b-1", "b0"]
    assert fam[0].macs < fam[1].macs < fam[2].macs and fam[0].params <= fam[1].params <= fam[2].params
    assert fam[1].resolution == round(224 / 1.15 / 8) * 8 and fam[1].dropout == 0.2
    d, w, _ = PAPER.multipliers(-1)
    assert fam[1].model_spec == scale(B0, d, w) and (fam[1].depth_mult, fam[1].width_mult) == (round(d, 4), round(w, 4))


@pytest.mark.parametrize("coeffs", [PAPER, Coefficients(2.0, 1.0, 1.0), Coefficients(1.0, 1.0, 1.41)],
                         ids=["paper", "depth-only", "resolution-only"])
def test_measured_family_hits_target_within_a_pixel_step(coeffs):
    """constraint=measured: every member phi != 0 is B0 scaled by alpha^phi, beta^phi, at the resolution (a multiple
    of 8) whose MACs over B0@224 are the closest to 2^phi: the neighbours one step (8 px) below and above bracket
    the target, and neither is closer (costs counted here with spec_cost on the neighbours' resolutions)."""
    step, base_res = 8, 224
    fam = family(coeffs, base_resolution=base_res, phis=[-1, 0, 1, 2, 3, 5, 7], resolution_multiple=step,
                 constraint="measured")
    base = spec_cost(B0, base_res).macs
    for m in fam:
        spec = m.model_spec
        d, w, _ = coeffs.multipliers(m.phi)
        assert spec.stages == scale(B0, d, w).stages and m.constraint == "measured"
        assert m.macs == spec_cost(spec, m.resolution).macs and m.params == spec_cost(spec, m.resolution).params
        if m.phi == 0:
            assert (m.resolution, m.macs_ratio) == (base_res, 1.0)
            continue
        goal = 2.0**m.phi
        assert m.ideal_ratio == round(goal, 4) and m.resolution % step == 0
        ratio = m.macs / base
        below = spec_cost(spec, m.resolution - step).macs / base
        above = spec_cost(spec, m.resolution + step).macs / base
        assert below <= goal <= above, (m.name, m.resolution, below, ratio, above, goal)
        off = abs(math.log(ratio / goal))
        assert off <= abs(math.log(below / goal)) and off <= abs(math.log(above / goal)), m.name
        assert m.macs_ratio == round(ratio, 4)
        assert m.activations_ratio == round(m.activations / spec_cost(B0, base_res).activations, 4)


def test_measured_family_member_b1_is_the_searched_candidate():
    """With the search's gamma range, the measured B1 is the planner's candidate itself (same spec, resolution)."""
    from scalesearch.scaling.scaler import Scaler

    planner = Scaler(B0, 224, 10, 3, constraint="measured", gamma_range=(1.0, 1.5), resolution_multiple=1,
                     depth_rounding="total")
    cand = planner.candidate(1.2, 1.1)
    assert cand["cost_flag"] == "ok"
    b0, b1 = family(Coefficients(1.2, 1.1, cand["gamma"]), base_resolution=224, phis=[0, 1], num_classes=10,
                    resolution_multiple=1, constraint="measured", depth_rounding="total", gamma_range=(1.0, 1.5))
    assert b1.resolution == cand["resolution"] and b1.spec["stages"] == cand["spec"]["stages"]
    assert (b1.params, b1.macs) == (cand["params"], cand["macs"])


def test_load_family_round_trip(tmp_path):
    members = family(PAPER, base_resolution=64, phis=[-1, 0, 1, 2], num_classes=10, constraint="measured",
                     depth_rounding="total")
    write_family(members, tmp_path, "t", 10, extra={"mode": "formula"})
    doc = json.loads((tmp_path / "family.json").read_text())
    assert doc["mode"] == "formula" and doc["num_classes"] == 10 and len(doc["members"]) == 4
    loaded = load_family(tmp_path / "family.json")
    assert loaded == members
    for m in loaded:
        model = build_model(spec=m.model_spec, num_classes=10)
        assert sum(p.numel() for p in model.parameters()) == m.params
        assert (tmp_path / "specs" / f"{m.name}.json").is_file()
    # a bare list of members (an older layout) reads the same
    (tmp_path / "list.json").write_text(json.dumps(doc["members"]))
    assert load_family(tmp_path / "list.json") == members


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"cannot read a family.json"),
        ("{not json", r"cannot read a family.json"),
        ('{"members": []}', r"no members"),
        ('[{"name": "b0"}]', r"member 0 has no 'spec'"),
        ('[{"name": "b0", "phi": 0, "depth_mult": 1, "width_mult": 1, "resolution": 64, "dropout": 0.2, "params": 1, '
         '"macs": 1, "activations": 1, "macs_ratio": 1, "activations_ratio": 1, "ideal_ratio": 1, '
         '"spec": {"stages": []}}]', r"family member b0: 'stages' is missing or empty"),
    ],
    ids=["missing", "not-json", "empty", "no-spec", "bad-spec"],
)
def test_load_family_errors(tmp_path, content, message):
    p = tmp_path / "family.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(ValueError, match=message) as e:
        load_family(p)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- other code bases
def test_to_torchvision_has_the_same_parameters():
    member = family(PAPER, base_resolution=224, phis=[2], constraint="measured")[0]
    for spec, expected in ((B0, TORCHVISION_PARAMS["b0"]), (member.model_spec, member.params)):
        with torch.device("meta"):
            tv = to_torchvision(spec)
            ours = EfficientNet(spec)
        assert meta_params(tv) == meta_params(ours) == expected
    tv10 = to_torchvision(scale(B0, 0.5, 0.5, "total"), num_classes=10)
    assert tv10.classifier[-1].out_features == 10
    assert meta_params(tv10) == spec_cost(scale(B0, 0.5, 0.5, "total"), 32, 10).params
    with torch.no_grad():
        assert tv10.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match=r"to_torchvision: .*se_ratio 0\.25"):
        to_torchvision(NAS_SPEC)


def test_squeeze_excite_and_drop_path_are_torchvisions():
    """model.SqueezeExcite and model.DropPath (written out so a trial's process does not import torchvision) compute
    what torchvision.ops.SqueezeExcitation(activation=SiLU) and StochasticDepth(p, "row") compute, with the same
    state dict and the same random draws."""
    from torchvision.ops import SqueezeExcitation, StochasticDepth

    from scalesearch.scaling.model import DropPath, SqueezeExcite

    torch.manual_seed(0)
    ours, theirs = SqueezeExcite(16, 4), SqueezeExcitation(16, 4, activation=torch.nn.SiLU)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 16, 5, 5)
    assert torch.equal(ours(x), theirs(x))
    for p in (0.0, 0.3, 1.0):
        a, b = DropPath(p).train(), StochasticDepth(p, "row").train()
        outs = []
        for m in (a, b):
            torch.manual_seed(7)
            outs.append(m(x))
        assert torch.equal(outs[0], outs[1])
        assert torch.equal(a.eval()(x), x)


def test_timm_arch_def_strings():
    # timm's efficientnet_b0 arch_def (timm/models/efficientnet.py), whose 'ds' blocks ignore the expansion
    assert timm_arch_def(B0) == [["ds_r1_k3_s1_c16_se0.25"], ["ir_r2_k3_s2_e6_c24_se0.25"], ["ir_r2_k5_s2_e6_c40_se0.25"],
                                 ["ir_r3_k3_s2_e6_c80_se0.25"], ["ir_r3_k5_s1_e6_c112_se0.25"],
                                 ["ir_r4_k5_s2_e6_c192_se0.25"], ["ir_r1_k3_s1_e6_c320_se0.25"]]
    assert timm_arch_def(NAS_SPEC)[0] == ["ds_r1_k3_s1_c16"] and timm_arch_def(NAS_SPEC)[4] == ["ir_r2_k7_s1_e6_c80_se0.5"]
