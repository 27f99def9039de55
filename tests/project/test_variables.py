"""Magic variables: every form fc-spec-runtime 18.4 lists, and every way one can fail."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from fc_wsgi.config import ConfigError
from fc_wsgi.project.source import read_yaml
from fc_wsgi.project.variables import Resolver
from tests.support import write_tree

DOCUMENT = """\
edition: 3.0.0
vars:
  region: cn-hangzhou
  service:
    name: svc
    description: d
  nested:
    a:
      b: deep
  list: [x, y]
  count: 3
  alias: ${{vars.region}}
  loop1: ${{vars.loop2}}
  loop2: ${{vars.loop1}}
resources:
  api:
    component: fc3
    props:
      memorySize: 256
      probe: {probe}
  other:
    component: fc3
    props:
      functionName: other-fn
"""

ENV = {"X": "ex", "HOME_X": "/home/x", "INJECT": "${vars.region}"}


def resolve(tmp_path: Path, probe: str, **options: Any) -> Any:
    write_tree(
        tmp_path,
        {
            "s.yaml": DOCUMENT.format(probe=probe),
            "note.txt": "a note\n",
            "code/index.py": "",
        },
    )
    source = read_yaml(tmp_path / "s.yaml")
    options.setdefault("env", ENV)
    options.setdefault("config", {})
    options.setdefault("outputs", {})
    resolver = Resolver(source, section="resources", **options)
    node = resolver.root().get("resources").get("api").get("props").get("probe")
    return node.plain()


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param("${vars.region}", "cn-hangzhou", id="vars"),
        pytest.param("${vars.nested.a.b}", "deep", id="vars, nested"),
        pytest.param("${vars.service}", {"name": "svc", "description": "d"}, id="whole: object"),
        pytest.param("${vars.count}", 3, id="whole: integer kept"),
        pytest.param("n=${vars.count}", "n=3", id="inside text: stringified"),
        pytest.param("'s=${vars.list}'", 's=["x", "y"]', id="inside text: JSON of a list"),
        pytest.param("${vars.list[1]}", "y", id="list index"),
        pytest.param("${vars.list.0}", "x", id="list index, dotted"),
        pytest.param("${vars.alias}", "cn-hangzhou", id="a variable that is a variable"),
        pytest.param("${env('HOME_X')}", "/home/x", id="env('X')"),
        pytest.param('${env("X")}', "ex", id='env("X")'),
        pytest.param("${env(X)}", "ex", id="env(X), 2.x"),
        pytest.param("${env.X}", "ex", id="env.X, 2.x"),
        pytest.param("${env('MISSING', 'dflt')}", "dflt", id="env default"),
        pytest.param("${env( 'MISSING' , 'd f' )}", "d f", id="spaces around arguments"),
        pytest.param("${env('MISSING', vars.region)}", "cn-hangzhou", id="env default: a variable"),
        pytest.param("${env('INJECT')}", "${vars.region}", id="env values are not evaluated"),
        pytest.param("${resources.other.props.functionName}", "other-fn", id="resources.r.props"),
        pytest.param("${other.props.functionName}", "other-fn", id="r.props, 2.x"),
        pytest.param("${this.props.memorySize}", 256, id="this.props"),
        pytest.param("${this.name}", "api", id="this.name"),
        pytest.param("${file('./note.txt')}", "a note\n", id="file()"),
        pytest.param("${file(./note.txt)}", "a note\n", id="file(bare path), 2.x"),
        pytest.param("""'${json(''{"a": [1]}'')}'""", {"a": [1]}, id="json()"),
        pytest.param("a-${vars.region}-${env.X}-b", "a-cn-hangzhou-ex-b", id="two in one text"),
        pytest.param("'$ {vars.region} and $x'", "$ {vars.region} and $x", id="no placeholder"),
    ],
)
def test_resolves(tmp_path: Path, probe: str, expected: Any) -> None:
    assert resolve(tmp_path, probe) == expected


def test_path_and_nested_calls_are_absolute_paths_from_the_project_folder(tmp_path: Path) -> None:
    assert resolve(tmp_path, "${path('./code')}") == str((tmp_path / "code").resolve())
    nested = resolve(tmp_path, "${env('MISSING', path('../'))}")
    assert nested == str(tmp_path.parent.resolve())


def test_config_and_outputs_resolve_only_when_given(tmp_path: Path) -> None:
    config = {"AccountID": "1234567890"}
    assert resolve(tmp_path, "${config('AccountID')}", config=config) == "1234567890"
    assert resolve(tmp_path, "${config(AccountID)}", config=config) == "1234567890"
    outputs = {"other": {"url": {"system_url": "https://x.fcapp.run"}}}
    found = resolve(tmp_path, "${other.output.url.system_url}", outputs=outputs)
    assert found == "https://x.fcapp.run"
    found = resolve(tmp_path, "${resources.other.output.url}", outputs=outputs)
    assert found == {"system_url": "https://x.fcapp.run"}


@pytest.mark.parametrize(
    ("probe", "problem"),
    [
        pytest.param("${vars.nope}", "${vars.nope}: vars.nope is not defined", id="undefined"),
        pytest.param("${vars.nested.a.c}", "vars.nested.a.c is not defined", id="undefined, deep"),
        pytest.param("${this.props.nope}", "resources.api.props.nope is not defined", id="this"),
        pytest.param("${env('MISSING')}", "environment variable MISSING is not set", id="env"),
        pytest.param("${env.MISSING}", "environment variable MISSING is not set", id="env.X"),
        pytest.param("${env(MISSING)}", "environment variable MISSING is not set", id="env(X)"),
        pytest.param("${env.A.B}", "env.NAME takes one name", id="env.A.B"),
        pytest.param(
            "${config('AccountID')}", "config value 'AccountID' is not configured", id="config"
        ),
        pytest.param(
            "${other.output.url}", "the deploy output of 'other' is not configured", id="output"
        ),
        pytest.param("${nosuch.props.x}", "unknown variable 'nosuch'", id="unknown root"),
        pytest.param("${upper('x')}", "unknown function 'upper'", id="unknown function"),
        pytest.param("${file('./missing.txt')}", "cannot read", id="file missing"),
        pytest.param("${json('{bad')}", "not valid JSON", id="json invalid"),
        pytest.param("${env('A', 'b', 'c')}", "env() takes 1 or 2 arguments", id="arity"),
        pytest.param("${path(vars.service)}", "path() needs text, got object", id="arg type"),
        pytest.param("${vars.region", "no closing }", id="unclosed"),
        pytest.param("'${}'", "not a reference or a function call", id="empty"),
        pytest.param("${vars.region x}", "not a reference or a function call", id="extra text"),
        pytest.param("${env('x)}", "no closing }", id="unterminated string"),
        pytest.param("${env('X' 'Y')}", "expected , or )", id="missing comma"),
        pytest.param("${resources}", "resources needs a name", id="resources alone"),
    ],
)
def test_errors_name_path_line_and_placeholder(tmp_path: Path, probe: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(tmp_path, probe)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 's.yaml'}:20: resources.api.props.probe: ")
    assert problem in message


def test_a_cycle_is_named_where_it_closes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(tmp_path, "${vars.loop1}")
    assert str(caught.value).endswith("s.yaml:13: vars.loop1: '${vars.loop2}': circular reference")


def test_errors_below_a_reference_name_the_path_read_and_the_line_written(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        edition: 3.0.0
        vars:
          service:
            name: ${env('NO_SUCH')}
        resources:
          api:
            props:
              service: ${vars.service}
        """
    )
    write_tree(tmp_path, {"s.yaml": text})
    resolver = Resolver(
        read_yaml(tmp_path / "s.yaml"), section="resources", env={}, config={}, outputs={}
    )
    service = resolver.root().get("resources").get("api").get("props").get("service")
    with pytest.raises(ConfigError, match=r"s\.yaml:4: resources\.api\.props\.service\.name: "):
        service.get("name")


def test_placeholders_never_read_never_fail(tmp_path: Path) -> None:
    # A real template's role: acs:ram::${config('AccountID')}:role/... must not stop a local run.
    assert resolve(tmp_path, "acs:ram::${config('AccountID')}:role/r", config={"AccountID": "1"})
    write_tree(tmp_path, {"s.yaml": DOCUMENT.format(probe="${config('AccountID')}")})
    resolver = Resolver(
        read_yaml(tmp_path / "s.yaml"), section="resources", env={}, config={}, outputs={}
    )
    props = resolver.root().get("resources").get("api").get("props")
    assert props.get("memorySize").value == 256
