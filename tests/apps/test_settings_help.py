"""Every setting is described once: its dataclass field's help (``config.setting``). The comment beside a key in
``conf/**/*.yaml`` is that help's brief (or there is none), and every app's ``--help`` shows the brief of each main
key. Fast: no Ray, no subprocess."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from scalesearch import config as C
from scalesearch.apps.cli import APPS
from scalesearch.apps.compose import SCHEMAS
from scalesearch.apps.help import MAIN_KEYS, app_help

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("dataset", "proxy", "search", "trials", "cluster")  # conf/<group>/: the keys of that group's dataclass
MAX_BRIEF = 100  # a brief fits beside its key in the YAML and on one --help line
KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_]\w*):(?P<rest>.*)$")
ENTRY = re.compile(r"^\s*-\s*(?P<key>[A-Za-z_]\w*)\s*:(?P<rest>.*)$")  # a defaults-list entry "- group: option"


def _fields(schema: type, prefix: str = ""):
    """(dotted key, field) for every field of a settings dataclass, through its nested groups."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        yield prefix + f.name, f
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")


def _comment(rest: str) -> str | None:
    value, sep, comment = rest.partition("#")
    return comment.strip() if sep else None


def _schemas_of(path: Path) -> list[type]:
    """The settings dataclass(es) a conf YAML's keys belong to (an experiment: any app that trains with groups)."""
    rel = path.relative_to(CONF)
    if len(rel.parts) == 1:
        return [SCHEMAS[path.stem][1]]
    if rel.parts[0] == "experiment":
        return [C.SearchAppConfig, C.NASAppConfig]
    return [typing.get_type_hints(C.SearchAppConfig)[rel.parts[0]]]


def _help_of(schemas: list[type], key: str) -> str | None:
    for schema in schemas:
        try:
            return C.setting_help(schema, key)
        except KeyError:
            pass
    return None


def comment_errors(text: str, schemas: list[type]) -> list[str]:
    """Where a conf YAML describes a key other than by its field's brief help: a comment beside a key (or beside a
    defaults-list group) that is not the brief, or a comment line in the body (the header above the first key is free
    text; ``hydra:`` is Hydra's, not ours)."""
    errors, stack, section, header = [], [], None, True
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if header and (not stripped or stripped.startswith("#")):
            continue
        header = False
        if not stripped or section == "hydra" and line.startswith((" ", "#")):
            continue
        if stripped.startswith("#"):
            errors.append(f"line {n}: a comment line in the body; describe the key in its field's help")
            continue
        entry = ENTRY.match(line) if section == "defaults" else None
        match = entry or KEY.match(line)
        if match is None:
            continue  # a defaults-list entry without a group ("- search_schema") or a list item
        if entry:
            key = entry["key"]
        else:
            indent = len(match["indent"])
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, match["key"])]
            key = ".".join(k for _, k in stack)
            section = match["key"] if indent == 0 else section
            if section in ("defaults", "hydra"):
                continue
        comment = _comment(match["rest"])
        help = _help_of(schemas, key)
        if help is None:
            errors.append(f"line {n}: {key} is not a setting of {' or '.join(s.__name__ for s in schemas)}")
        elif comment is not None and comment != C.brief(help):
            errors.append(f"line {n}: {key}'s comment {comment!r} is not its field's brief help {C.brief(help)!r}")
    return errors


CONF_FILES = sorted(CONF.rglob("*.yaml"))


def test_every_setting_of_every_app_has_a_help_and_a_short_brief():
    missing, long = [], []
    for config_name, (_, schema) in SCHEMAS.items():
        for key, f in _fields(schema):
            help = f.metadata.get("help", "")
            if not help.strip():
                missing.append(f"{schema.__name__}.{key}")
            elif len(C.brief(help)) > MAX_BRIEF:
                long.append(f"{schema.__name__}.{key} ({len(C.brief(help))})")
    assert not missing, f"fields without a help (config.setting(default, help)): {missing}"
    assert not long, f"briefs over {MAX_BRIEF} characters (put the details after the first line): {long}"


def test_setting_help_finds_nested_keys_and_refuses_others():
    assert C.setting_help(C.SearchAppConfig, "search.cost").startswith("the cost held equal")
    assert C.setting_help(C.NASAppConfig, "proxy.fault.hog_gb") == C.setting_help(C.ProxyConfig, "fault.hog_gb")
    assert C.brief("one line\nmore") == "one line"
    for key in ("search.foo", "seed.x", "nope"):
        with pytest.raises(KeyError, match=key):
            C.setting_help(C.SearchAppConfig, key)


def test_list_and_dict_defaults_are_not_shared():
    a, b = C.SearchAppConfig(), C.SearchAppConfig()
    a.family.phis.append(9.0)
    a.search.sampler_kwargs["x"] = 1
    assert b.family.phis == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0] and b.search.sampler_kwargs == {}


@pytest.mark.parametrize("path", CONF_FILES, ids=lambda p: p.relative_to(CONF).as_posix())
def test_yaml_key_comments_are_the_fields_brief_help(path):
    errors = comment_errors(path.read_text(), _schemas_of(path))
    assert not errors, f"{path.relative_to(CONF.parent)}:\n" + "\n".join(errors)


def test_the_yaml_check_fails_on_a_reworded_comment_or_a_body_comment_line():
    text = (CONF / "config.yaml").read_text()
    seed = next(line for line in text.splitlines() if line.startswith("seed:"))
    assert not comment_errors(text, [C.SearchAppConfig])
    assert comment_errors(text.replace(seed, "seed: 0  # the first seed"), [C.SearchAppConfig])
    assert comment_errors(text.replace(seed, seed + "\n# why seed 0"), [C.SearchAppConfig])
    assert comment_errors(text.replace(seed, "sede: 0"), [C.SearchAppConfig])
    assert not comment_errors(text.replace(seed, "seed: 0"), [C.SearchAppConfig])  # no comment is fine


@pytest.mark.parametrize("fn", sorted(APPS))
def test_every_apps_help_shows_each_main_keys_brief_help(fn):
    config_name, prog, *_ = APPS[fn]
    schema = SCHEMAS[config_name][1]
    text = app_help(config_name, prog, schema)
    lines = text.split("main keys (default):\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(lines) == len(MAIN_KEYS[config_name]) >= 2
    for key, line in zip(MAIN_KEYS[config_name], lines):
        want = C.brief(C.setting_help(schema, key))
        assert line.lstrip().startswith(f"{key}=") and line.endswith(f" {want}"), (line, want)
