"""Configuration loading: TOML plus SETTLERD_* overrides, and error reports naming each field."""

from datetime import timedelta
from pathlib import Path

import pytest

from settlerd import config

EXAMPLES = sorted((Path(__file__).parents[2] / "config").glob("*.toml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settlerd.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_is_valid(path: Path) -> None:
    settings = config.load(path)
    assert settings.node_id


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'node_id = "a"\n[api]\nport = 9000\n[policy]\nleg1_duration = "2d"\n')
    monkeypatch.setenv("SETTLERD_API__PORT", "9100")
    monkeypatch.setenv("SETTLERD_POLICY__MIN_TIME_TO_REVEAL", "30m")
    settings = config.load(path)
    assert settings.api.port == 9100
    assert settings.policy.leg1_duration == timedelta(days=2)
    assert settings.policy.min_time_to_reveal == timedelta(minutes=30)


def test_every_problem_is_named_by_its_field_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'node_id = "bad id"\n[api]\nport = 70000\ncolour = "red"\n'
        '[policy]\nleg2_duration = "soon"\n[chains.doge]\nadapter = "dogecoin"\n',
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    fields = sorted(problem.split(":")[0] for problem in caught.value.problems)
    assert fields == ["api.colour", "api.port", "node_id", "policy.leg2_duration"]
    assert any("'soon' is not a duration" in p for p in caught.value.problems)


def test_unknown_adapter_is_reported_once_the_rest_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, 'node_id = "a"\n[chains.doge]\nadapter = "dogecoin"\n')
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == [
        "chains.doge.adapter: no chain adapter named 'dogecoin' is installed (installed: bitcoin, evm)"
    ]


def test_leg2_longer_than_two_thirds_of_leg1_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'node_id = "a"\n[policy]\nleg1_duration = "24h"\nleg2_duration = "17h"\n')
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems[0].startswith("policy: leg 2 lasts 17:00:00, more than 2/3 of leg 1's")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "file not found"),
        ('node_id = "a"\n[api\n', "not valid TOML: "),
        ("[api]\nport = 1\n", "node_id: Field required"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, text: str | None, problem: str) -> None:
    path = tmp_path / "settlerd.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems[0].startswith(problem)
    assert caught.value.source == str(path)


def test_each_chain_table_is_checked_with_its_adapters_own_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'node_id = "a"\n'
        '[chains.btc]\nadapter = "bitcoin"\nrpc_urll = "http://127.0.0.1:8332"\nrpc_url = "http://x"\n'
        'seed_file = "seed"\nfee_cap = "lots"\n'
        '[chains.eth]\nadapter = "evm"\nrpc_url = "http://x"\ncontract = "0x00"\nprivate_key_file = "k"\n'
        "max_fee_gwie = 50\nrpc_timeout = 0\n",
    )
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert sorted(caught.value.problems) == [
        "chains.btc.fee_cap: Input should be a valid number, unable to parse string as a number",
        "chains.btc.rpc_urll: unknown key",
        "chains.eth.max_fee_gwie: unknown key",
        "chains.eth.rpc_timeout: Input should be greater than 0",
    ]


def test_a_chain_table_missing_its_secret_says_which_keys_would_do(tmp_path: Path) -> None:
    path = write(tmp_path, 'node_id = "a"\n[chains.btc]\nadapter = "bitcoin"\nrpc_url = "http://x"\n')
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == ["chains.btc: set exactly one of seed and seed_file"]
