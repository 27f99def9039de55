"""Reading s.yaml: the safe loader only, and the line of every key, aliases and merges included."""

from __future__ import annotations

from pathlib import Path

import pytest

from fc_wsgi.config import ConfigError
from fc_wsgi.project.source import dotted, read_yaml
from tests.support import write_tree

TEXT = """\
edition: 3.0.0
vars: &defaults
  region: cn-hangzhou
  list:
    - a
    - b
resources:
  api:
    <<: *defaults
    props: {x: 1}
"""


def test_lines_of_keys_items_and_merged_keys(tmp_path: Path) -> None:
    source = read_yaml(write_tree(tmp_path, {"s.yaml": TEXT}) / "s.yaml")
    assert source.data["resources"]["api"]["region"] == "cn-hangzhou"
    assert source.line(("vars", "region")) == 3
    assert source.line(("vars", "list", 1)) == 6
    assert source.line(("resources", "api", "props", "x")) == 10
    assert source.line(("resources", "api", "region")) == 3  # merged from &defaults
    assert source.line(("resources", "api", "props", "nothing", "here")) == 10  # nearest
    error = source.error(("resources", "api", "props", "x"), "bad")
    assert str(error) == f"{tmp_path / 's.yaml'}:10: resources.api.props.x: bad"


def test_dotted_paths() -> None:
    assert dotted(("a", "b", 0, "c")) == "a.b[0].c"
    assert dotted(()) == "(top)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("a: [1\n", ":2: not valid YAML", id="syntax"),
        pytest.param("a: !!python/object:os.system ls\n", "not valid YAML", id="unsafe tag"),
        pytest.param("- a\n- b\n", "must hold a YAML mapping, got array", id="list"),
        pytest.param("", "must hold a YAML mapping, got NoneType", id="empty"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        read_yaml(write_tree(tmp_path, {"s.yaml": text}) / "s.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(tmp_path / "s.yaml")


def test_recursive_aliases_do_not_loop(tmp_path: Path) -> None:
    source = read_yaml(write_tree(tmp_path, {"s.yaml": "a: &x [1, *x]\n"}) / "s.yaml")
    assert source.line(("a", 0)) == 1
