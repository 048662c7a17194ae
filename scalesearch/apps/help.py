"""``--help`` of every app: its title, its config groups with their options, its main keys with their defaults, and
the example commands of its conf YAML's header (one line each)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import __version__
from ..paths import CONF_DIR

__all__ = ["GROUPS", "MAIN_KEYS", "TITLES", "group_options", "help_examples", "app_help", "override_value"]

GROUPS = {"config": ["dataset", "proxy", "search", "trials", "cluster", "experiment"],
          "nas": ["dataset", "proxy", "search", "trials", "cluster", "experiment"],
          "ablate": ["dataset", "proxy", "trials", "cluster"], "validate": ["cluster"]}


MAIN_KEYS = {
    "config": [
        ("search.strategy", "grid: the constrained lattice; optuna: sample the surface"),
        ("search.constraint", "measured: every candidate at target^φ measured cost as built; "
                              "nominal: the paper's α·β²·γ²"),
        ("search.cost", "what is held equal: macs, activations, latency or train_step "
                        "(measured on the trials' device)"),
        ("search.n_seeds", "seeds per candidate (a decision needs >= 3)"),
        ("search.max_points", "grid size (farthest-point sampling over the surface; null: all)"),
        ("search.phi", "the compound coefficient the candidates are built at"),
        ("trials.cpus_per_trial", "Ray resources per trial (also trials.gpus_per_trial, e.g. 0.25 = 4 trials per GPU)"),
        ("proxy.epochs", "the proxy budget (also proxy.batch_size, proxy.lr, proxy.optimizer)"),
        ("dataset.name", "synthetic, imagefolder (dataset.root=DIR or ARCHIVE), cifar10, cifar100, svhn, fashionmnist"),
        ("dataset.base_resolution", "the baseline proxy's input size"),
        ("validate.enabled", "retrain the top validate.top_k + validate.random_k candidates "
                             "validate.epochs_mult times longer"),
        ("family.train", "proxy-train the found family up to family.max_phi "
                         "(family.compare_paper: the paper's too)"),
        ("family.phis", "the members emitted (negative: below B0)"),
        ("cluster.address", "host:port of a Ray cluster (null: $RAY_ADDRESS if set, else start Ray here)"),
        ("cluster.storage", "Ray Tune's experiments on several nodes: a path all see or a URI (s3://, gs://)"),
        ("resume", "continue or extend the newest run with these settings (or hydra.run.dir=RUN)"),
        ("verbose", "0 quiet, 1 the tool's progress, 2 also Ray Tune's tables"),
    ],
    "generate": [("alpha, beta, gamma", "the coefficients"), ("mode", "formula or official (the published B0..B7)"),
                 ("constraint", "nominal (resolution base·γ^φ) or measured (resolution solved: cost target^φ)"),
                 ("phis", "the members, e.g. [-1,0,1,2] (negative: below B0)"), ("base_resolution", "B0's input size"),
                 ("num_classes", "classifier width"), ("baseline", "a baseline.json from scalesearch-nas")],
    "validate": [("run_dir", "a finished search run"), ("validate.top_k", "top candidates retrained"),
                 ("validate.random_k", "random others retrained"), ("validate.epochs_mult", "how much longer")],
    "report": [("run_dir", "a search run to re-render"), ("report.pick_rule", "marginal or knee"),
               ("report.min_gain_per_doubling", "the marginal rule's threshold"),
               ("report.top_k", "rows of the ranking")],
    "ablate": [("run_dir", "a search run: its best is one compound variant, results go there"),
               ("phis", "nominal cost 2^φ per variant"), ("seeds", "seeds per variant"),
               ("compound", "[best, paper]")],
    "nas": [("nas.objective", "weighted (MnasNet reward) or pareto"), ("nas.cost", "macs or latency"),
            ("nas.num_samples", "architectures tried"),
            ("chain.search", "then search the coefficients on the found baseline"),
            ("resume", "continue an interrupted NAS (hydra.run.dir=RUN)")],
    "compare": [("runs", "a Hydra multirun directory and/or run directories, e.g. runs=[multirun/2026-11-26_10-00-00]"),
                ("out_dir", "where compare.md / compare.json / plots go (default: the Hydra run directory)")],
}


TITLES = {"config": "search compound-scaling coefficients with proxy trainings on Ray Tune",
          "generate": "emit a scaled family (specs, params, MACs) from coefficients",
          "validate": "retrain a finished run's top candidates longer: the proxy-fidelity audit",
          "report": "re-render a run's report from its tables (never trains)",
          "ablate": "the paper's Fig. 8: one-dimension vs compound scaling at equal cost",
          "nas": "search a baseline (MnasNet-style), then optionally its coefficients",
          "compare": "the coefficients found on several datasets, side by side"}


def group_options(group_dir: Path, schema) -> list[str]:
    """The options of a config group; of ``experiment`` (``@package _global_``) those that set only this app's keys."""
    import yaml

    names = {f.name for f in dataclasses.fields(schema)} | {"defaults"}
    return sorted(p.stem for p in group_dir.glob("*.yaml")
                  if group_dir.name != "experiment" or set(yaml.safe_load(p.read_text()) or {}) <= names)


def help_examples(config_name: str) -> list[str]:
    """The example command lines of an app: its conf YAML's header comment lines that start with a command
    (``#   scalesearch… args  # what``), without the trailing comment; ``--help`` shows them."""
    out = []
    for line in (Path(CONF_DIR) / f"{config_name}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if line.startswith("#   ") and text.startswith("scalesearch"):
            out.append(text.split("  #")[0].strip())
    return out


def app_help(config_name: str, prog: str, schema) -> str:
    """``--help``: the app's groups (with their options) and main keys, one line each (``schema``: the app's settings
    dataclass, which holds the defaults)."""
    from omegaconf import OmegaConf

    conf = Path(CONF_DIR)
    lines = [f"{prog} {__version__} — {TITLES[config_name]}", "",
             f"usage: {prog} [key=value ...]" + (" [group=option ...] [-m: a Hydra multirun]" if config_name in GROUPS
                                                 else ""), ""]
    if config_name in GROUPS:
        lines.append("groups:")
        for g in GROUPS[config_name]:
            options = group_options(conf / g, schema)
            lines.append(f"  {('+' if g == 'experiment' else '') + g:<22} {', '.join(options)}")
        lines.append("")
    lines.append("main keys (default):")
    defaults = OmegaConf.structured(schema)
    for key, text in MAIN_KEYS[config_name]:
        value = OmegaConf.select(defaults, key.split(",")[0].strip(), default=None)
        shown = f"{key}={override_value(OmegaConf.to_object(value) if OmegaConf.is_config(value) else value)}" \
            if "," not in key else key
        lines.append(f"  {shown:<34} {text}")
    examples = help_examples(config_name)
    if examples:
        lines += ["", "examples:"] + [f"  {e}" for e in examples]
    lines += ["", f"All keys and their current values: {prog} --cfg job [overrides]. More: the project's README.md."]
    return "\n".join(lines)


def override_value(v) -> str:
    """A default as it is typed on the command line (null, true, [0,1]: Hydra reads None as the string 'None')."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)
