"""TopicSpec validation and TOML spec loading (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import ConfigError
from pipeline._topics import TopicSpec, load_topic_specs

REPO = Path(__file__).resolve().parents[2]


def test_spec_is_frozen_and_configs_immutable() -> None:
    spec = TopicSpec("orders", 3, 1, {"retention.ms": 1000})  # type: ignore[dict-item]
    assert spec.configs["retention.ms"] == "1000"
    with pytest.raises(AttributeError):
        spec.partitions = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.configs["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "invalid topic name"),
        ({"name": "x" * 250}, "invalid topic name"),
        ({"name": "t", "partitions": 0}, "partitions must be >= 1"),
        ({"name": "t", "replication_factor": 0}, "replication_factor"),
    ],
)
def test_spec_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TopicSpec(**kwargs)  # type: ignore[arg-type]


def test_example_spec_loads() -> None:
    specs = load_topic_specs(REPO / "examples" / "topics.toml")
    by_name = {s.name: s for s in specs}
    assert by_name["orders"].partitions == 6  # from [defaults]
    assert by_name["reminders"].partitions == 3  # overridden
    assert by_name["orders"].configs["cleanup.policy"] == "delete"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [toml", "not valid TOML"),
        ("[defaults]\npartitions = 2\n", "no \\[topics"),
        ("[topic.x]\n", "unknown section"),
        ("[topics.x]\npartitons = 2\n", "unknown key.*partitons"),
        ('[topics.x]\npartitions = "many"\n', "topic x"),
        ("[topics.x]\npartitions = -1\n", "partitions must be >= 1"),
    ],
)
def test_bad_spec_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_topic_specs(path)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_topic_specs(tmp_path / "nope.toml")
