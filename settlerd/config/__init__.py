"""Configuration: a TOML file plus ``SETTLERD_*`` environment overrides, validated by pydantic-settings.

Environment variables win over the file; nested fields use ``__`` (``SETTLERD_STORE__URL``). Secrets are
never written into the file itself: settings that hold one name a file to read it from (``*_file``), which
is how systemd's ``LoadCredential=`` hands them over.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from settlerd import adapters
from settlerd.config.credentials import CredentialError, resolve
from settlerd.swap import policy as swap_policy

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
NODE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# A lease shorter than this would expire on an ordinary database hiccup (a checkpoint, a failover of
# PostgreSQL itself); longer than the maximum, a dead leader's swaps wait too long for their claims.
MIN_LEASE_S, MAX_LEASE_S = 3, 120
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: Any) -> Any:
    """Accept "90m", "24h", "2d" besides what pydantic takes for a timedelta (seconds, ISO 8601)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        if not value.strip().upper().startswith("P"):
            raise ValueError(f"{value!r} is not a duration; write e.g. 90m, 24h, 2d or ISO 8601 (PT90M)")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one ``field.path: what is wrong`` each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Section):
    url: str = Field(
        default="sqlite:///settlerd.sqlite3",
        description="Database: `sqlite:///PATH` (default, one process) or `postgresql://…` (one leader "
        "and standby replicas, see Replicas).",
    )
    lease: Duration = Field(
        default=timedelta(seconds=10),
        description="PostgreSQL replicas: how long the leader's lease lasts unrenewed; a standby takes "
        "over within a quarter of it after it expires.",
    )
    advertise_url: str | None = Field(
        default=None,
        description="PostgreSQL replicas: this replica's API address as others name it when it leads "
        "(a standby's `503` on trade routes points there); default: the address the API listens on.",
    )

    @field_validator("lease")
    @classmethod
    def _lease_bounds(cls, value: timedelta) -> timedelta:
        if not MIN_LEASE_S <= value.total_seconds() <= MAX_LEASE_S:
            raise ValueError(f"must be between {MIN_LEASE_S}s and {MAX_LEASE_S}s")
        return value


class ApiToken(_Section):
    """One bearer token, kept only as the SHA-256 of its text (``sha256sum`` of the token, no newline)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="Who holds it, for logs (not secret)."
    )
    scope: Literal["read", "trade", "admin"] = Field(
        description="`read` (venues), `trade` (desks), `admin` (operators); each includes the ones before."
    )
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$", description="Hex SHA-256 of the token; the token itself is never kept."
    )

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class _TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[ApiToken] = Field(default_factory=list)


class ApiSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(default=8480, ge=0, le=65535, description="TCP port of the HTTP API (0 picks one).")
    tokens: list[ApiToken] = Field(
        default_factory=list, description="Bearer tokens as `{name, scope, sha256}` tables."
    )
    tokens_file: str | None = Field(
        default=None,
        description="TOML file of more `[[tokens]]` tables: a systemd credential name, `%d/NAME` or an "
        "absolute path (see `*_file` settings).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    max_streams_per_token: int = Field(
        default=16, ge=1, description="Open event streams one token may hold; more get 429."
    )
    max_streams: int = Field(
        default=256,
        ge=1,
        description="Open event streams in all; more get 503. Must fit under the open files limit with "
        "512 descriptors to spare, or the daemon refuses to start.",
    )

    @model_validator(mode="after")
    def _load_tokens_file(self) -> ApiSettings:
        if self.tokens_file is None:
            return self
        try:
            path = resolve("api.tokens_file", self.tokens_file)
            with path.open("rb") as fh:
                loaded = _TokenFile.model_validate(tomllib.load(fh))
        except CredentialError as exc:
            raise ValueError(str(exc)) from None
        except OSError as exc:
            raise ValueError(f"tokens_file {self.tokens_file}: cannot read ({exc.strerror or exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"tokens_file {path}: not valid TOML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"tokens_file {path}: {_field_path(first['loc'])}: {first['msg']}") from None
        self.tokens = [*self.tokens, *loaded.tokens]
        return self


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")


class MqttSettings(_Section):
    enabled: bool = Field(default=True, description="Publish swap status over MQTT.")
    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    username: str | None = Field(default=None, description="MQTT user name, if the broker wants one.")
    password_file: Path | None = Field(default=None, description="File holding the MQTT password.")
    tls: bool = Field(default=False, description="Connect to the broker over TLS.")
    ca_file: Path | None = Field(default=None, description="CA bundle for the broker's certificate.")
    retain_ended_for: Duration = Field(
        default=timedelta(days=7),
        gt=timedelta(0),
        description="How long an ended swap's retained status stays on the broker before it is cleared.",
    )


class ChainSettings(BaseModel):
    """One configured chain. ``adapter`` picks the adapter package; the other keys belong to it."""

    model_config = ConfigDict(extra="allow")

    adapter: str = Field(description="Name of the chain adapter (an entry point in `settlerd.adapters`).")
    finality_depth: int = Field(default=6, ge=1, description="Confirmations before a leg counts as final.")


class PolicySettings(_Section):
    """Swap lifetimes and the timelock safety distances of ``settlerd.swap.policy``."""

    leg1_duration: Duration = Field(
        default=timedelta(hours=24),
        description="Shortest wall-clock lifetime of the initiator's lock (leg 1), to its earliest refund "
        "time; longer when leg 2 may open for refund later (a Bitcoin leg 2).",
    )
    leg2_duration: Duration = Field(
        default=timedelta(hours=12), description="Wall-clock lifetime of the participant's lock (leg 2)."
    )
    leg1_claim_margin: Duration = Field(
        default=swap_policy.LEG1_CLAIM_MARGIN,
        description="Leg 1 outlasts leg 2 by at least this: the participant's time to claim late.",
    )
    min_leg2_duration: Duration = Field(
        default=swap_policy.MIN_LEG2_DURATION, description="Shortest acceptable leg 2 at capture."
    )
    min_leg2_window: Duration = Field(
        default=swap_policy.MIN_LEG2_WINDOW, description="The participant does not lock with less left."
    )
    min_time_to_reveal: Duration = Field(
        default=swap_policy.MIN_TIME_TO_REVEAL,
        description="The initiator never reveals the secret later than this before leg 2's deadline.",
    )
    claim_urgent_window: Duration = Field(
        default=swap_policy.CLAIM_URGENT_WINDOW, description="Claims this close to their deadline go first."
    )

    @field_validator("*")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration such as 90m, 24h or 2d")
        return value

    def to_policy(self) -> swap_policy.Policy:
        return swap_policy.Policy(
            leg1_claim_margin=self.leg1_claim_margin,
            min_leg2_duration=self.min_leg2_duration,
            min_leg2_window=self.min_leg2_window,
            min_time_to_reveal=self.min_time_to_reveal,
            claim_urgent_window=self.claim_urgent_window,
        )

    @model_validator(mode="after")
    def _consistent(self) -> PolicySettings:
        problems = swap_policy.check_durations(self.leg1_duration, self.leg2_duration, self.to_policy())
        if problems:
            raise ValueError("; ".join(problems))
        return self


class EngineSettings(_Section):
    tick: Duration = Field(
        default=timedelta(seconds=5),
        description="How often deadlines are re-checked and failed actions retried.",
    )
    node_key_file: str | None = Field(
        default=None,
        description="File with this daemon's secp256k1 node key (64 hex characters) signing offers and "
        "acceptances; a systemd credential name, `%d/NAME` or a path. Needed to trade.",
    )
    allow_unknown_counterparties: bool = Field(
        default=False,
        description="Trade with any node that signs its documents, under whatever node id it claims. "
        "Off: only the nodes under `[counterparties]`, with their keys.",
    )


class CounterpartySettings(_Section):
    node_key: str = Field(
        pattern=r"^0[23][0-9a-f]{64}$", description="The counterparty daemon's node key (compressed, hex)."
    )
    max_in_flight: dict[str, int] = Field(
        default_factory=dict,
        description="Caps on our unsettled locks with this counterparty, base units by `chain:asset`.",
    )


class RiskSettings(_Section):
    max_in_flight: dict[str, int] = Field(
        default_factory=dict, description="Caps on our unsettled locks, base units by `chain:asset`."
    )


class Settings(BaseSettings):
    """Everything settlerd reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="SETTLERD_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    node_id: str = Field(
        pattern=NODE_ID,
        description="This daemon's name in MQTT topics and signed documents (letters, digits, `_.-`).",
    )
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    mqtt: MqttSettings = MqttSettings()
    policy: PolicySettings = PolicySettings()
    engine: EngineSettings = EngineSettings()
    risk: RiskSettings = RiskSettings()
    counterparties: dict[str, CounterpartySettings] = Field(
        default_factory=dict,
        description="Counterparties by node id; only they may trade with us, unless "
        "`engine.allow_unknown_counterparties` is on.",
    )
    chains: dict[str, ChainSettings] = Field(default_factory=dict, description="Chains by name.")

    _toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load(path: Path) -> Settings:
    """Read and validate ``path`` plus the environment; raise ConfigError listing every problem."""
    source = str(path)
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)  # parse once up front so a syntax error names its line, not a field
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except PermissionError:
        raise ConfigError(source, ["permission denied"]) from None
    except IsADirectoryError:
        raise ConfigError(source, ["is a directory, not a TOML file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None

    class _FromFile(Settings):
        _toml_file = path

    try:
        settings = _FromFile()  # type: ignore[call-arg]  # fields come from the file and environment
    except ValidationError as exc:
        problems = [
            f"{_field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}" for err in exc.errors()
        ]
        raise ConfigError(source, problems) from None
    problems = _chain_problems(settings)
    if problems:
        raise ConfigError(source, problems)
    problems = _limit_problems(settings)
    if problems:
        raise ConfigError(source, problems)
    return settings


def _chain_problems(settings: Settings) -> list[str]:
    """Each chain table checked by its adapter: installed, written for this contract, its keys valid."""
    installed = adapters.discover()
    problems: list[str] = []
    for name, chain in settings.chains.items():
        info = installed.get(chain.adapter)
        if info is None:
            problems.append(
                f"chains.{name}.adapter: no chain adapter named {chain.adapter!r} is installed "
                f"(installed: {', '.join(sorted(installed)) or 'none'})"
            )
            continue
        mismatch = info.version_problem()
        if mismatch is not None:
            problems.append(f"chains.{name}.adapter: {mismatch}")
        if info.settings is None:
            continue
        table = {**(chain.model_extra or {}), "name": name, "finality_depth": chain.finality_depth}
        try:
            info.settings.model_validate(table)
        except ValidationError as exc:
            problems += adapters.settings_problems(exc, f"chains.{name}")
    return problems


def limit_keys(settings: Settings) -> list[tuple[str, str]]:
    """Every in-flight limit key with the setting it is under (``risk.max_in_flight``, ...)."""
    keys = [("risk.max_in_flight", key) for key in settings.risk.max_in_flight]
    for name, counterparty in settings.counterparties.items():
        keys += [(f"counterparties.{name}.max_in_flight", key) for key in counterparty.max_in_flight]
    return keys


def _limit_problems(settings: Settings) -> list[str]:
    """Limit keys name a configured chain; the daemon brings the asset to the chain's own spelling at
    start (``ChainAdapter.canonical_asset``), so ``evm:eth`` and ``evm:ETH`` are one limit."""
    problems = [
        f"counterparties.{name}: not a node id (letters, digits and `_.-`, at most 63 characters)"
        for name in settings.counterparties
        if not re.fullmatch(NODE_ID, name)
    ]
    for where, key in limit_keys(settings):
        chain, _, asset = key.partition(":")
        if chain not in settings.chains or not asset:
            problems.append(
                f"{where}.{key}: keys are `chain:asset` with a configured chain "
                f"({', '.join(sorted(settings.chains)) or 'none configured'})"
            )
    return problems
