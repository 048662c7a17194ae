"""scalesearch-generate through real Hydra composition, in a subprocess."""

import json

import pytest

from conftest import run_cli

KEYS = ["name", "phi", "depth_mult", "width_mult", "resolution", "dropout", "params", "macs", "macs_ratio", "ideal_ratio"]


def test_generate_formula_writes_family(tmp_path):
    rc, out, err = run_cli("generate_main", "alpha=1.2", "beta=1.1", "gamma=1.15", "phis=[0,1,2,3]",
                           "num_classes=10", "base_resolution=64", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err
    fam = json.loads((tmp_path / "family.json").read_text())
    assert [m["name"] for m in fam] == ["b0", "b1", "b2", "b3"]
    assert all(set(KEYS) <= set(m) for m in fam)
    assert [m["resolution"] for m in fam] == [64, 72, 88, 96]
    md = (tmp_path / "family.md").read_text()
    assert "| b3 |" in md and "| b3 |" in out


def test_generate_official_mode(tmp_path):
    rc, out, err = run_cli("generate_main", "mode=official", "phis=[0,4]", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err
    fam = json.loads((tmp_path / "family.json").read_text())
    assert [(m["name"], m["resolution"], m["width_mult"], m["depth_mult"]) for m in fam] == [("b0", 224, 1.0, 1.0), ("b4", 380, 1.4, 1.8)]
    assert fam[1]["params"] == 19341616 and fam[1]["phi_fit"] > 0
    assert "φ fit" in out


def test_off_constraint_allowed_with_flag(tmp_path):
    rc, out, err = run_cli("generate_main", "alpha=1.5", "beta=1.3", "gamma=1.3", "phis=[0,1]",
                           "allow_off_constraint=true", f"hydra.run.dir={tmp_path}")
    assert rc == 0, err
    assert "outside 2.0" in err
    assert (tmp_path / "family.json").exists()


@pytest.mark.parametrize("args, needle", [
    (["alpha=0.9"], "alpha=0.9"),
    (["beta=abc"], "beta=abc"),
    (["alpha=1.5", "beta=1.3", "gamma=1.3"], "outside target 2.0"),
    (["mode=official", "phis=[8]"], "phi=8"),
    (["mode=bogus"], "mode='bogus'"),
    (["phis=[-1]"], "-1"),
    (["base_resolution=8"], "base_resolution=8"),
])
def test_generate_bad_input(tmp_path, args, needle):
    rc, out, err = run_cli("generate_main", *args, f"hydra.run.dir={tmp_path}")
    assert rc != 0
    assert needle in err
    assert "Traceback" not in err
