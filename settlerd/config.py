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

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
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
        description="Database: `sqlite:///PATH` (default, one daemon) or `postgresql://…` (replicas).",
    )


class ApiSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(default=8480, ge=0, le=65535, description="TCP port of the HTTP API (0 picks one).")


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


class ChainSettings(BaseModel):
    """One configured chain. ``adapter`` picks the adapter package; the other keys belong to it."""

    model_config = ConfigDict(extra="allow")

    adapter: str = Field(description="Name of the chain adapter (an entry point in `settlerd.adapters`).")
    finality_depth: int = Field(default=6, ge=1, description="Confirmations before a leg counts as final.")


class PolicySettings(_Section):
    leg1_duration: Duration = Field(
        default=timedelta(hours=24), description="Wall-clock lifetime of the initiator's lock (leg 1)."
    )
    leg2_duration: Duration = Field(
        default=timedelta(hours=12), description="Wall-clock lifetime of the participant's lock (leg 2)."
    )
    claim_margin: Duration = Field(
        default=timedelta(hours=1),
        description="Claims are due this long before their deadline; also the leg-2 safety margin.",
    )

    @field_validator("leg1_duration", "leg2_duration", "claim_margin")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration such as 90m, 24h or 2d")
        return value

    @model_validator(mode="after")
    def _leg2_fits_in_leg1(self) -> PolicySettings:
        # The participant must still be able to claim leg 1 after the initiator claimed leg 2 at the
        # last moment: leg 2 ending at two thirds of leg 1 leaves a third of it for that claim.
        if self.leg2_duration * 3 > self.leg1_duration * 2:
            raise ValueError(
                f"leg2_duration ({self.leg2_duration}) must be at most two thirds of leg1_duration "
                f"({self.leg1_duration})"
            )
        if self.leg2_duration + self.claim_margin >= self.leg1_duration:
            raise ValueError("leg2_duration + claim_margin must be shorter than leg1_duration")
        return self


class Settings(BaseSettings):
    """Everything settlerd reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="SETTLERD_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    node_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="This daemon's name in MQTT topics and signed documents (letters, digits, `_.-`).",
    )
    store: StoreSettings = StoreSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    mqtt: MqttSettings = MqttSettings()
    policy: PolicySettings = PolicySettings()
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
    installed = adapters.discover()
    unknown = [
        f"chains.{name}.adapter: no chain adapter named {chain.adapter!r} is installed "
        f"(installed: {', '.join(sorted(installed)) or 'none'})"
        for name, chain in settings.chains.items()
        if chain.adapter not in installed
    ]
    if unknown:
        raise ConfigError(source, unknown)
    return settings
