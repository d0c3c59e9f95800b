"""The files the Pulumi CLI reads before it runs any of our code: `Pulumi.yaml` and the stack files.

The CLI parses them with a strict YAML parser and checks `Pulumi.yaml` against its project schema;
the mocks tests never read them that way, so a file Pulumi refuses (an unquoted `: ` in a value, a
duplicated key) would pass everything else. The project schema is Pulumi's own
(pulumi/pulumi `sdk/go/common/workspace/project.json`, Apache-2.0), copied unchanged next to this
file so that a clean clone has it. Pulumi publishes no schema for stack files, so their shape is
checked against the keys its `ProjectStack` type has, and every `courier:*` value against the
program's config model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from courier_infra.config import NAMESPACE, ConfigError, load_stack_config

ROOT = Path(__file__).resolve().parents[2]
PROJECT_SCHEMA = Path(__file__).with_name("pulumi-project.schema.json")
STACKS = ("dev", "prod")

# pulumi/pulumi sdk/go/common/workspace: the fields of ProjectStack (a stack's settings file).
STACK_FILE_KEYS = frozenset({"secretsprovider", "encryptedkey", "encryptionsalt", "config", "environment"})
# `<namespace>:<name>`: the project's namespace for its own keys, a provider's (`aws`) for the rest.
CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.-]+:[^:\s]+$")
PYTHON_TOOLCHAINS = frozenset({"pip", "poetry", "uv"})


class DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: no arbitrary objects


def stack_file_problems(document: Any) -> list[str]:
    """What Pulumi would not accept in a stack settings file (an empty list when it is fine)."""
    if not isinstance(document, dict):
        return [f"the file must be a mapping, not {type(document).__name__}"]
    problems = [f"unknown top-level key {key!r}" for key in document if key not in STACK_FILE_KEYS]
    config = document.get("config") or {}
    if not isinstance(config, dict):
        return [*problems, "config must be a mapping"]
    problems += [
        f"config key {key!r} is not namespaced as <namespace>:<key>"
        for key in config
        if not isinstance(key, str) or not CONFIG_KEY.match(key)
    ]
    return problems


def as_pulumi_config(config: dict[str, Any]) -> dict[str, str]:
    """The config map as the CLI hands it to the program: strings, structured values as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def test_pulumi_yaml_is_valid_yaml_and_matches_pulumis_project_schema() -> None:
    project = load_strict((ROOT / "Pulumi.yaml").read_text())
    schema = json.loads(PROJECT_SCHEMA.read_text())

    jsonschema.validate(project, schema, cls=jsonschema.Draft202012Validator)

    assert project["name"] == NAMESPACE  # `courier:*` keys are the project's namespace
    assert project["description"].startswith("Courier: ")
    runtime = project["runtime"]
    assert runtime["name"] == "python"
    assert runtime["options"]["toolchain"] in PYTHON_TOOLCHAINS
    assert (ROOT / runtime["options"]["virtualenv"]).name == ".venv"  # the venv `make install` syncs
    assert (ROOT / project["main"] / "__main__.py").is_file()


@pytest.mark.parametrize("stack", STACKS)
def test_stack_file_has_pulumis_shape_and_its_courier_settings_validate(stack: str) -> None:
    document = load_strict((ROOT / f"Pulumi.{stack}.yaml").read_text())

    assert stack_file_problems(document) == []
    config = document["config"]
    assert config["aws:region"]
    assert any(key.startswith(f"{NAMESPACE}:") for key in config)
    settings = load_stack_config(stack, as_pulumi_config(config))  # raises ConfigError, key named
    assert settings.stage == stack
    assert settings.region == config["aws:region"]


def test_the_strict_loader_refuses_what_pulumi_refuses() -> None:
    with pytest.raises(yaml.YAMLError, match="mapping values are not allowed"):
        load_strict("name: courier\ndescription: Courier: streams answers\n")
    with pytest.raises(DuplicateKeyError, match="duplicate key 'courier:model'"):
        load_strict("config:\n  courier:model: a\n  courier:model: b\n")


def test_the_stack_file_checks_catch_a_wrong_shape() -> None:
    document = load_strict("configs:\n  x: 1\nconfig:\n  model: claude\n  aws:region: eu-west-1\n")

    assert stack_file_problems(document) == [
        "unknown top-level key 'configs'",
        "config key 'model' is not namespaced as <namespace>:<key>",
    ]
    with pytest.raises(ConfigError, match="courier:natGatways"):
        load_stack_config("dev", {"aws:region": "eu-west-1", "courier:model": "m", "courier:natGatways": "2"})


def test_project_schema_rejects_a_broken_project() -> None:
    # The schema is the real one, not a stub that accepts anything.
    schema = json.loads(PROJECT_SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"description": "no name"}, schema, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"name": "courier", "runtime": {"name": "python", "toolchain": "uv"}},
            schema,
            cls=jsonschema.Draft202012Validator,
        )
