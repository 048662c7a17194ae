"""``--help`` of every app: its title, its config groups with their options, its main keys with their defaults and their
fields' brief help, and the example commands of its conf YAML's header (one line each)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import __version__
from ..config import brief, setting_help
from ..paths import CONF_DIR

__all__ = ["GROUPS", "MAIN_KEYS", "TITLES", "group_options", "help_examples", "app_help", "override_value"]

GROUPS = {"config": ["dataset", "proxy", "search", "trials", "cluster", "experiment"],
          "nas": ["dataset", "proxy", "search", "trials", "cluster", "experiment"],
          "ablate": ["dataset", "proxy", "trials", "cluster"], "validate": ["cluster"]}


# which keys each app's --help shows, in order; the words are the fields' help (config.setting_help, its brief)
MAIN_KEYS = {
    "config": ["search.strategy", "search.constraint", "search.cost", "search.n_seeds", "search.max_points",
               "search.phi", "trials.cpus_per_trial", "trials.gpus_per_trial", "proxy.epochs", "proxy.batch_size",
               "dataset.name", "dataset.base_resolution", "validate.enabled", "family.train", "family.compare_paper",
               "family.phis", "cluster.address", "cluster.storage", "resume", "verbose"],
    "generate": ["alpha", "beta", "gamma", "mode", "constraint", "phis", "base_resolution", "num_classes", "baseline"],
    "validate": ["run_dir", "validate.top_k", "validate.random_k", "validate.epochs_mult"],
    "report": ["run_dir", "report.pick_rule", "report.min_gain_per_doubling", "report.top_k"],
    "ablate": ["run_dir", "phis", "seeds", "compound"],
    "nas": ["nas.objective", "nas.cost", "nas.num_samples", "chain.search", "resume"],
    "compare": ["runs", "out_dir"],
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
    for key in MAIN_KEYS[config_name]:
        value = OmegaConf.select(defaults, key)
        shown = f"{key}={override_value(OmegaConf.to_object(value) if OmegaConf.is_config(value) else value)}"
        lines.append(f"  {shown:<34} {brief(setting_help(schema, key))}")
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
