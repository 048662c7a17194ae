"""The model family as data, exact cost against torchvision, and the scaling generator."""


import pytest
import torch
import torchvision

from scalesearch import B0, OFFICIAL, Coefficients, build_model, count_cost, family, round_channels, round_repeats, scale
from scalesearch.scaling import dropout_for_phi, fit_phi


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


def test_round_repeats_ceil_and_min_depth():
    assert round_repeats(3, 1.0) == 3
    assert round_repeats(3, 1.1) == 4  # ceil(3.3)
    assert round_repeats(1, 3.1) == 4
    assert round_repeats(4, 1.0001) == 5
    assert round_repeats(1, 0.1) == 1  # at least one block


def test_b0_spec_matches_table1():
    assert [(s.expand_ratio, s.kernel, s.stride, s.out_channels, s.repeats) for s in B0.stages] == [
        (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
        (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    assert (B0.stem_channels, B0.head_channels, B0.num_blocks) == (32, 1280, 16)
    s = scale(B0, depth=3.1, width=2.0)
    assert s.stem_channels == 64 and s.head_channels == 2560
    assert [st.repeats for st in s.stages] == [4, 7, 7, 10, 10, 13, 4]


def test_model_structure_readable_names():
    m = build_model("b0", num_classes=10)
    names = dict(m.named_modules())
    for key in ["stem.conv", "stages.0.0.dwise.conv", "stages.3.1.expand.conv", "stages.3.1.se.fc1", "stages.6.0.project.bn", "head.conv", "classifier"]:
        assert key in names, key
    bn = names["stem.bn"]
    assert bn.eps == 1e-3 and bn.momentum == 0.01
    # stochastic depth grows linearly over the 16 blocks: 0 at the first, 0.2*15/16 at the last
    assert names["stages.6.0"].residual is False
    assert names["stages.5.3.drop_path"].p == pytest.approx(0.2 * 14 / 16)
    assert names["stages.1.1.drop_path"].p == pytest.approx(0.2 * 2 / 16)
    assert m.dropout.p == 0.2 and isinstance(names["stem.act"], torch.nn.SiLU)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_variants_match_torchvision(name):
    ours = build_model(name, num_classes=1000)
    ref = getattr(torchvision.models, f"efficientnet_{name}")(weights=None)
    res = OFFICIAL[name].resolution
    a, b = count_cost(ours, res), count_cost(ref, res)
    assert a.params == b.params
    assert abs(a.macs / b.macs - 1) < 0.01
    assert ours.dropout.p == OFFICIAL[name].dropout
    assert a.activations > 0


def test_cost_counts_macs_and_activations_on_a_tiny_net():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 5))
    c = count_cost(net, 8)
    assert c.macs == 3 * 4 * 9 * 64 + 256 * 5
    assert c.activations == 4 * 64
    assert c.params == 3 * 4 * 9 + 256 * 5 + 5


@pytest.mark.parametrize("res", [37, 250])
def test_forward_backward_at_odd_resolutions(res):
    torch.manual_seed(0)
    m = build_model(width=1.1, depth=1.2, num_classes=10)
    x = torch.randn(2, 3, res, res)
    out = m(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert m.stem.conv.weight.grad is not None
    m.eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, res, res)).shape == (1, 10)


def test_unknown_official_name():
    with pytest.raises(ValueError, match="unknown official variant 'b9'"):
        build_model("b9")


def test_coefficients_constraint():
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
    d, w, r = c.multipliers(2)
    assert (d, w, r) == pytest.approx((1.44, 1.21, 1.3225))
    with pytest.raises(ValueError, match="phi=-1"):
        c.multipliers(-1)


def test_dropout_grows_like_the_official_table():
    assert [dropout_for_phi(p) for p in range(8)] == [OFFICIAL[f"b{p}"].dropout for p in range(8)]


def test_formula_family_cost_grows_monotonically():
    fam = family(Coefficients(1.2, 1.1, 1.15), base_resolution=224, num_classes=1000)
    assert [m.name for m in fam] == [f"b{i}" for i in range(8)]
    macs = [m.macs for m in fam]
    params = [m.params for m in fam]
    assert macs == sorted(macs) and len(set(macs)) == 8
    assert params == sorted(params)
    assert fam[0].macs_ratio == 1.0 and fam[0].resolution == 224
    assert all(m.resolution % 8 == 0 for m in fam)
    assert fam[3].resolution == round(224 * 1.15**3 / 8) * 8
    # measured MACs track the ideal product^phi (rounding distorts, but within 35 %)
    for m in fam[1:]:
        assert m.ideal_ratio == pytest.approx(1.92**m.phi, rel=1e-3)
        assert 0.75 < m.macs_ratio / m.ideal_ratio < 1.35


def test_official_family_with_fitted_phi():
    fam = family(Coefficients(1.2, 1.1, 1.15), mode="official", phis=[0, 1, 3, 7])
    b0, b1, b3, b7 = fam
    assert b0.phi_fit == 0 and b0.params == count_cost(build_model("b0"), 224).params
    assert b3.resolution == 300 and b3.width_mult == 1.2 and b3.depth_mult == 1.4
    assert b7.macs == count_cost(build_model("b7"), 600).macs
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


@pytest.mark.parametrize("kwargs, res, in_ch", [({"name": "b7"}, 600, 3), ({"depth": 2.0, "width": 1.2, "num_classes": 10}, 64, 1)])
def test_meta_device_cost_equals_the_real_model(kwargs, res, in_ch):
    from scalesearch.cost import model_cost

    real = count_cost(build_model(in_channels=in_ch, **kwargs), res, in_ch)
    assert model_cost(res, in_ch, **kwargs) == real
