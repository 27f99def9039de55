"""load_config: FC's shapes, our extensions, and errors that name the field path."""

from __future__ import annotations

import json

import pytest

from fc_wsgi import ALL_METHODS, ConfigError, TriggerConfig, load_config
from fc_wsgi.config import describe

BASE = {"authType": "anonymous", "methods": ["GET"]}


def test_bare_trigger_config_loads_with_fc_defaults():
    config = load_config(BASE)
    assert config.methods == ("GET",)
    assert config.profile == "fc3"
    assert config.limits.max_header_bytes == 8192
    assert config.limits.max_url_bytes == 4096
    assert config.limits.max_body_bytes == 32 * 2**20
    assert config.limits.max_async_body_bytes == 128 * 2**10
    assert config.cors.mode == "fc"
    assert config.async_.max_async_retry_attempts == 3
    assert config.async_.max_async_event_age_in_seconds == 86400
    assert config.async_.durability == "fsync"


def test_whole_fc_trigger_resource_loads(tmp_path):
    resource = {
        "triggerName": "http",
        "triggerType": "http",
        "qualifier": "LATEST",
        "description": "copied from s.yaml",
        "triggerConfig": {**BASE, "methods": ["get", "POST", "GET"], "disableURLInternet": False},
    }
    path = tmp_path / "trigger.json"
    path.write_text(json.dumps(resource))
    assert load_config(path).methods == ("GET", "POST")
    assert load_config(str(path)) == load_config(path)


def test_a_loaded_config_passes_through():
    config = load_config(BASE)
    assert load_config(config) is config


def test_auth_config_as_fcs_json_string_is_accepted_as_an_object():
    config = load_config({**BASE, "authConfig": json.dumps({"tokenLookup": "header:A"})})
    assert config.auth_config == {"tokenLookup": "header:A"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"authType": "anonymous"}, "methods: required", id="methods missing"),
        pytest.param({**BASE, "methods": []}, "methods: must list", id="methods empty"),
        pytest.param({**BASE, "methods": ["TRACE"]}, "methods[0]: must be one of", id="method"),
        pytest.param({**BASE, "methods": "GET"}, "methods: must be an array", id="methods type"),
        pytest.param({**BASE, "authType": "basic"}, "authType: must be one of", id="authType"),
        pytest.param({**BASE, "profile": "fc4"}, "profile: must be one of", id="profile"),
        pytest.param({**BASE, "extra": 1}, "extra: unknown field", id="unknown"),
        pytest.param(
            {**BASE, "limits": {"maxHeaderBytes": "8k"}},
            "limits.maxHeaderBytes: must be an integer",
            id="limit type",
        ),
        pytest.param(
            {**BASE, "limits": {"maxUrlBytes": 0}},
            "limits.maxUrlBytes: must be 1..",
            id="limit range",
        ),
        pytest.param(
            {**BASE, "async": {"maxAsyncRetryAttempts": 12}},
            "async.maxAsyncRetryAttempts: must be 0..8, got 12",
            id="retries",
        ),
        pytest.param(
            {**BASE, "async": {"maxAsyncEventAgeInSeconds": 0}},
            "async.maxAsyncEventAgeInSeconds: must be 1..604800",
            id="age",
        ),
        pytest.param(
            {**BASE, "async": {"durability": "disk"}},
            "async.durability: must be one of",
            id="durability",
        ),
        pytest.param(
            {**BASE, "async": {"destinationConfig": {"onSuccess": {"x": 1}}}},
            "async.destinationConfig.onSuccess.x: unknown field",
            id="destination",
        ),
        pytest.param({**BASE, "cors": {"mode": "lax"}}, "cors.mode: must be one of", id="cors"),
        pytest.param(
            {**BASE, "cors": {"allowCredentials": "yes"}},
            "cors.allowCredentials: must be true or false",
            id="bool",
        ),
        pytest.param(
            {**BASE, "authConfig": "{nope"}, "authConfig: is not valid JSON", id="authConfig json"
        ),
        pytest.param(
            {"triggerType": "timer", "triggerConfig": BASE},
            "triggerType: must be http",
            id="resource type",
        ),
        pytest.param(
            {"triggerConfig": {"authType": "anonymous"}},
            "triggerConfig.methods: required",
            id="resource path",
        ),
        pytest.param(
            {**BASE, "defaultDomain": 1},
            "defaultDomain: must be true or false",
            id="int is not bool",
        ),
        pytest.param(
            {**BASE, "limits": {"maxBodyBytes": True}},
            "limits.maxBodyBytes: must be an integer",
            id="bool is not int",
        ),
    ],
)
def test_bad_values_name_their_field_path(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(raw)


def test_function_auth_needs_access_keys(monkeypatch):
    monkeypatch.delenv("FC_WSGI_ACCESS_KEY_ID", raising=False)
    with pytest.raises(ConfigError, match="accessKeys: authType function needs at least one"):
        load_config({**BASE, "authType": "function"})


def test_function_auth_without_access_keys_takes_the_environments_pair(monkeypatch):
    """An s.yaml cannot list keys: FC checks the caller's account keys; ours come from
    FC_WSGI_ACCESS_KEY_ID / FC_WSGI_ACCESS_KEY_SECRET, never from the function's ALIBABA_CLOUD_*."""
    monkeypatch.setenv("FC_WSGI_ACCESS_KEY_ID", "AK-ENV")
    monkeypatch.setenv("FC_WSGI_ACCESS_KEY_SECRET", "env-secret-0123456789")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "role-key")
    config = load_config({**BASE, "authType": "function"})
    assert [(k.id, k.secret) for k in config.access_keys] == [("AK-ENV", "env-secret-0123456789")]
    monkeypatch.delenv("FC_WSGI_ACCESS_KEY_SECRET")
    with pytest.raises(ConfigError, match="FC_WSGI_ACCESS_KEY_ID and FC_WSGI_ACCESS_KEY_SECRET"):
        load_config({**BASE, "authType": "function"})


def test_auth_type_defaults_to_function_as_fcs_api():
    with pytest.raises(ConfigError, match="accessKeys"):
        load_config({"methods": ["GET"]})


def test_jwt_auth_needs_and_checks_its_auth_config_at_load():
    with pytest.raises(ConfigError, match="authConfig: authType jwt needs"):
        load_config({**BASE, "authType": "jwt"})
    with pytest.raises(ConfigError, match="triggerConfig.authConfig.tokenLookup"):
        load_config(
            {
                "triggerConfig": {
                    **BASE,
                    "authType": "jwt",
                    "authConfig": {"jwksUrl": "https://k.example/jwks", "tokenLookup": "body:x"},
                }
            }
        )


def test_signature_settings():
    config = load_config({**BASE, "signature": {"schemes": ["acs3"], "maxSkewSeconds": 60}})
    assert config.signature.schemes == ("acs3",)
    assert config.signature.sdk_variants is True
    with pytest.raises(ConfigError, match=r"signature.schemes\[0\]: must be one of"):
        load_config({**BASE, "signature": {"schemes": ["v2"]}})


def test_secrets_never_appear_in_errors_or_descriptions(monkeypatch):
    monkeypatch.setenv("AK2_SECRET", "env-secret-value")
    keys = [
        {"id": "AK1", "secret": "inline-secret-value"},
        {"id": "AK2", "secretEnv": "AK2_SECRET"},
    ]
    config = load_config({**BASE, "authType": "function", "accessKeys": keys})
    assert [k.secret for k in config.access_keys] == ["inline-secret-value", "env-secret-value"]
    shown = repr(config) + repr(list(describe(config)))
    assert "secret-value" not in shown
    assert "AK1, AK2" in dict(describe(config))["accessKeys"]
    with pytest.raises(ConfigError) as caught:
        load_config({**BASE, "accessKeys": [*keys, {"id": "AK1", "secret": "other-secret"}]})
    assert "duplicate" in str(caught.value) and "secret" not in str(caught.value).split(":")[0]
    assert "other-secret" not in str(caught.value)


def test_secret_env_must_be_set(monkeypatch):
    monkeypatch.delenv("NOPE_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"accessKeys\[0\].secretEnv: environment variable"):
        load_config({**BASE, "accessKeys": [{"id": "a", "secretEnv": "NOPE_SECRET"}]})


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


def test_default_trigger_in_code_allows_every_method():
    assert TriggerConfig(auth_type="anonymous").methods == ALL_METHODS


def test_config_is_frozen():
    config = load_config(BASE)
    with pytest.raises(AttributeError):
        config.profile = "fc2"  # type: ignore[misc]


# -- the function section (fc-spec-runtime.md 14-17) -----------------------------------------


def _function(**fields):
    return load_config({"authType": "anonymous", "methods": ["GET"], "function": fields}).function


def test_function_section_defaults_pin_the_open_questions():
    function = _function()
    assert function.timeout == 3  # open question 4
    assert function.initialization_timeout == 3
    assert function.instance_concurrency == 1
    assert function.qualifier == "LATEST" and function.handler == "index.handler"


def test_function_names_of_both_generations(tmp_path):
    config_file = tmp_path / "trigger.json"
    config_file.write_text(
        '{"authType": "anonymous", "methods": ["GET"], '
        '"function": {"name": "f2", "codeUri": "code", "timeout": 86400}}'
    )
    function = load_config(config_file).function
    assert function.name == "f2" and function.timeout == 86400
    assert function.code_uri == str(tmp_path / "code")  # relative to the config file
    assert _function(functionName="f3", code="src").name == "f3"
    with pytest.raises(ConfigError, match="function.name: give functionName or name, not both"):
        _function(functionName="a", name="b")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": 0}, "function.timeout: must be 1..86400, got 0"),
        ({"timeout": 86401}, "function.timeout: must be 1..86400"),
        ({"instanceConcurrency": 201}, "function.instanceConcurrency: must be 1..200"),
        ({"initializationTimeout": 301}, "function.initializationTimeout: must be 1..300"),
        ({"memorySize": 32}, "function.memorySize: must be 64..32768"),
        ({"memorySize": 130}, "function.memorySize: must be a multiple of 64"),
        ({"environmentVariables": {"A": []}}, "function.environmentVariables.A: must be a string"),
        ({"handlr": "x"}, "function.handlr: unknown field"),
        (
            {"initializer": "a.b", "instanceLifecycleConfig": {"initializer": {"handler": "c.d"}}},
            "function.initializer: initializer and instanceLifecycleConfig.initializer name",
        ),
    ],
)
def test_function_section_errors(fields, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _function(**fields)


def test_environment_values_from_yaml_become_strings():
    variables = _function(environmentVariables={"PORT": 8080, "DEBUG": True}).environment_variables
    assert variables == {"PORT": "8080", "DEBUG": "true"}


def test_check_lists_variable_names_not_values():
    config = load_config({"authType": "anonymous", "methods": ["GET"],
                          "function": {"environmentVariables": {"TOKEN": "s3cret"}}})  # fmt: skip
    shown = dict(describe(config))
    assert shown["function.environmentVariables"] == "TOKEN"
    assert "s3cret" not in repr(shown)


def test_both_initializer_spellings_for_the_same_hook_as_the_project_loader_gives_them():
    hook = {"initializer": {"handler": "a.init", "timeout": 7, "command": ["x"]}, "preStop": {}}
    function = _function(
        initializer="a.init", initializationTimeout=7, instanceLifecycleConfig=hook,
        accountId=1234567890,
    )  # fmt: skip
    assert (function.init_handler, function.init_timeout_seconds) == ("a.init", 7)
    assert function.account_id == "1234567890"
