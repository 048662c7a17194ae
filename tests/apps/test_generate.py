"""scalesearch-generate through real Hydra composition, in a subprocess (each costs ~5 s of imports, so a few
representative runs), and the same job's argument checks in-process (``run_generate``: the CLI turns its
ValueErrors into one line and exit code 2, shown by the subprocess cases)."""

import json
import math
import warnings

import pytest
import torch
from torchvision.models.efficientnet import EfficientNet as TVEfficientNet
from torchvision.models.efficientnet import MBConvConfig

from helpers import run_cli
from scalesearch.config import GenerateConfig
from scalesearch.apps.generate import run_generate
from scalesearch.scaling.model import spec_cost, timm_arch_def
from scalesearch.scaling.scaler import load_family
from scalesearch.scaling.spec import B0, ModelSpec, scale

KEYS = ["name", "phi", "depth_mult", "width_mult", "resolution", "dropout", "params", "macs", "activations", "macs_ratio",
        "activations_ratio", "ideal_ratio", "spec", "constraint"]


def _one_line_error(rc, err, needle):
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("scalesearch: error: ") and needle in lines[0], err
    assert "Traceback" not in err


def test_generate_formula_writes_family_and_specs(tmp_path):
    rc, out, err = run_cli("generate_main", "alpha=1.2", "beta=1.1", "gamma=1.15", "phis=[0,1,2,3]",
                           "num_classes=10", "base_resolution=64", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err
    doc = json.loads((tmp_path / "family.json").read_text())
    assert {k: doc[k] for k in ("coefficients", "mode", "constraint", "base_resolution", "resolution_multiple",
                                "depth_rounding", "target", "num_classes")} == {
        "coefficients": [1.2, 1.1, 1.15], "mode": "formula", "constraint": "nominal", "base_resolution": 64,
        "resolution_multiple": 8, "depth_rounding": "stage", "target": 2.0, "num_classes": 10}
    fam = doc["members"]
    assert [m["name"] for m in fam] == ["b0", "b1", "b2", "b3"]
    assert all(set(KEYS) <= set(m) for m in fam)
    assert [m["resolution"] for m in fam] == [64, 72, 88, 96]  # round(64 * 1.15^phi) to multiples of 8
    md = (tmp_path / "family.md").read_text()
    assert "| b3 |" in md and "| b3 |" in out
    loaded = load_family(tmp_path / "family.json")
    for m, member in zip(fam, loaded):
        export = json.load(open(tmp_path / "specs" / f"{m['name']}.json"))
        spec = ModelSpec.from_dict(export["spec"], where=f"specs/{m['name']}.json")
        assert spec == member.model_spec == ModelSpec.from_dict(m["spec"])
        assert [s.repeats for s in spec.stages] == [s.repeats for s in scale(B0, 1.2 ** m["phi"], 1.1 ** m["phi"]).stages]
        assert (export["resolution"], export["params"], export["macs"], export["num_classes"]) == (
            m["resolution"], m["params"], m["macs"], 10)
        assert export["timm"]["arch_def"] == timm_arch_def(spec) and export["timm"]["num_features"] == spec.head_channels
        # the exported torchvision rows build torchvision's own EfficientNet with the member's parameter count
        tv = export["torchvision"]
        with torch.device("meta"):
            net = TVEfficientNet([MBConvConfig(*row) for row in tv["rows"]], dropout=tv["dropout"], num_classes=10,
                                 last_channel=tv["last_channel"])
        assert sum(p.numel() for p in net.parameters()) == m["params"]
        assert m["params"] == spec_cost(spec, m["resolution"], 10).params


def test_generate_measured_with_phis_below_b0(tmp_path):
    """constraint=measured with phis -1, 0, 1, 2: b-1 is named and smaller than b0, and every member's MACs over
    b0's are within one 8-px step of 2^phi (the costs at resolution ± 8 bracket it, counted here)."""
    rc, out, err = run_cli("generate_main", "constraint=measured", "phis=[-1,0,1,2]", "num_classes=10",
                           "base_resolution=64", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err
    doc = json.loads((tmp_path / "family.json").read_text())
    assert doc["constraint"] == "measured"
    fam = load_family(tmp_path / "family.json")
    assert [m.name for m in fam] == ["b-1", "b0", "b1", "b2"] and "| b-1 (below B0) |" in out
    assert (tmp_path / "specs" / "b-1.json").is_file()
    assert fam[0].macs < fam[1].macs and fam[0].params < fam[1].params and fam[1].resolution == 64
    base = spec_cost(B0, 64, 10).macs
    for m in fam:
        assert m.constraint == "measured"
        if m.phi == 0:
            continue
        goal, spec, r = 2.0**m.phi, m.model_spec, m.resolution
        below, above = (spec_cost(spec, x, 10).macs / base for x in (r - 8, r + 8))
        assert below <= goal <= above, (m.name, below, m.macs / base, above)
        assert abs(math.log(m.macs / base / goal)) <= min(abs(math.log(below / goal)), abs(math.log(above / goal)))


@pytest.mark.parametrize("args, needle", [
    (["phis=[]"], "phis=[] is empty; allowed: a non-empty list"),
    (["phis=[-40]"], "phis contains -40 (b-40): depth multiplier"),
])
def test_generate_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    rc, out, err = run_cli("generate_main", *args, f"hydra.run.dir={tmp_path}")
    _one_line_error(rc, err, needle)
    assert not (tmp_path / "family.json").exists()


# ---------------------------------------------------------------- the same job in-process
def test_generate_official_mode(tmp_path, capsys):
    run_generate(GenerateConfig(mode="official", phis=[0.0, 4.0]), tmp_path)
    out = capsys.readouterr().out
    fam = json.loads((tmp_path / "family.json").read_text())["members"]
    assert [(m["name"], m["resolution"], m["width_mult"], m["depth_mult"]) for m in fam] == [("b0", 224, 1.0, 1.0), ("b4", 380, 1.4, 1.8)]
    assert fam[1]["params"] == 19341616 and fam[1]["phi_fit"] > 0 and fam[1]["constraint"] == "official"
    assert "φ fit" in out


def test_off_constraint_allowed_with_flag(tmp_path):
    cfg = GenerateConfig(alpha=1.5, beta=1.3, gamma=1.3, phis=[0.0, 1.0], allow_off_constraint=True, num_classes=10,
                         base_resolution=32)
    with pytest.warns(UserWarning, match="outside 2.0"):
        members = run_generate(cfg, tmp_path)
    assert [m.name for m in members] == ["b0", "b1"] and (tmp_path / "family.json").exists()


@pytest.mark.parametrize("overrides, needle", [
    ({"alpha": 0.9}, "alpha=0.9 is below 1"),
    ({"alpha": 1.5, "beta": 1.3, "gamma": 1.3}, "outside target 2.0"),
    ({"mode": "official", "phis": [8.0]}, "phi=8"),
    ({"mode": "bogus"}, "mode='bogus' is unknown; allowed: formula, official"),
    ({"constraint": "exact"}, "constraint='exact' is unknown; allowed: measured, nominal"),
    ({"depth_rounding": "ceil"}, "depth_rounding='ceil' is unknown; allowed: stage, total"),
    ({"phis": [1.0, 1.0]}, "repeats a value"),
    ({"phis": []}, "phis=[] is empty"),
    ({"phis": [-40.0], "constraint": "measured"}, "phis contains -40 (b-40): depth multiplier"),
    ({"phis": [-7.5]}, "phis contains -7.5 (phi-7.5): width multiplier 0.489"),
    ({"alpha": 1.0, "beta": 1.0, "gamma": 1.41, "phis": [-5.0]}, "phis contains -5 (b-5): resolution 11.5 px is below 16"),
    ({"base_resolution": 8}, "base_resolution=8 is too small; allowed: >= 16"),
    ({"base_resolution": 8, "mode": "official"}, "base_resolution=8 is too small; allowed: >= 16"),
    ({"num_classes": 0}, "num_classes=0"),
    ({"resolution_multiple": 0}, "resolution_multiple=0"),
])
def test_generate_bad_input_in_process(tmp_path, overrides, needle):
    cfg = GenerateConfig(**{"num_classes": 10, "base_resolution": 64, "phis": [0.0, 1.0], **overrides})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as e:
            run_generate(cfg, tmp_path)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "family.json").exists()


def test_generate_total_rounding_and_a_fractional_phi(tmp_path):
    cfg = GenerateConfig(phis=[0.0, 1.5], num_classes=10, base_resolution=64, depth_rounding="total")
    members = run_generate(cfg, tmp_path)
    assert [m.name for m in members] == ["b0", "phi1.5"]
    assert members[1].model_spec.stages == scale(B0, 1.2**1.5, 1.1**1.5, "total").stages
    assert json.loads((tmp_path / "family.json").read_text())["depth_rounding"] == "total"
