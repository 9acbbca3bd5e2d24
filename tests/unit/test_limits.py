"""Risk limits are keyed on the chain's one spelling of each asset, so a limit cannot be dodged by case."""

from pathlib import Path

import pytest
from settlerd_evm.adapter import EvmAdapter, EvmSettings

from settlerd import config
from settlerd.config import CounterpartySettings, RiskSettings, Settings
from settlerd.daemon import StartupError, _limits

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
B_KEY = "02" + "11" * 32


def evm() -> EvmAdapter:
    settings = EvmSettings(
        rpc_url="http://127.0.0.1:1", contract="0x" + "00" * 20, private_key="0x" + "11" * 32
    )
    return EvmAdapter(settings, None)  # type: ignore[arg-type]  # no store use here


def settings(per_asset: dict[str, int], with_b: dict[str, int] | None = None) -> Settings:
    return Settings(
        node_id="a",
        risk=RiskSettings(max_in_flight=per_asset),
        counterparties={"desk-b": CounterpartySettings(node_key=B_KEY, max_in_flight=with_b or {})},
    )


def test_limit_keys_are_brought_to_the_canonical_spelling() -> None:
    limits = _limits(settings({"evm:eth": 1, f"evm:{TOKEN.lower()}": 2}, {"evm:Eth": 3}), {"evm": evm()})
    assert limits.per_asset == {"evm:ETH": 1, f"evm:{TOKEN}": 2}
    assert limits.per_counterparty == {"desk-b": {"evm:ETH": 3}}


@pytest.mark.parametrize(
    ("per_asset", "problem"),
    [
        ({"evm:eth": 1, "evm:ETH": 2}, "risk.max_in_flight: evm:ETH and another key both name evm:ETH"),
        ({"evm:0xdeadbeef": 1}, "risk.max_in_flight.evm:0xdeadbeef: '0xdeadbeef' is neither ETH"),
    ],
)
def test_two_spellings_of_one_asset_or_an_unknown_asset_stop_start_up(
    per_asset: dict[str, int], problem: str
) -> None:
    with pytest.raises(StartupError) as stopped:
        _limits(settings(per_asset), {"evm": evm()})
    assert str(stopped.value).startswith(problem)


def test_a_limit_on_a_chain_not_configured_is_a_config_problem(tmp_path: Path) -> None:
    path = tmp_path / "settlerd.toml"
    path.write_text('node_id = "a"\n[risk.max_in_flight]\n"evn:ETH" = 1\n')
    with pytest.raises(config.ConfigError) as refused:
        config.load(path)
    assert refused.value.problems == [
        "risk.max_in_flight.evn:ETH: keys are `chain:asset` with a configured chain (none configured)"
    ]
