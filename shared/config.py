"""Configuration: a TOML file, overridden by environment variables, overridden by CLI flags.

Each component defines a :class:`ComponentSettings` subclass with nested sections (plain pydantic
models with ``extra="forbid"``). :func:`load_settings` reads it once at start-up and turns every
validation problem into a :class:`ConfigError` that names the field and where its value came from.
Environment variables use the component's prefix and ``__`` between levels, for example
``EC_AGENT_MQTT__PORT=1884``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from edgecascade.shared.errors import ConfigError
from edgecascade.shared.topics import ID_PATTERN

S = TypeVar("S", bound="ComponentSettings")


class Section(BaseModel):
    """Base for a config section: unknown keys are errors, values are frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(Section):
    """One MQTT broker connection."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    username: str | None = Field(None, description="User name, when the broker requires one.")
    password: SecretStr | None = Field(None, description="Password; prefer the environment.")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive, seconds.")
    session_expiry: int = Field(
        3600, ge=0, description="Seconds the broker keeps our session and queue while we are away."
    )
    reconnect_min: float = Field(0.5, gt=0, description="First reconnect delay, seconds.")
    reconnect_max: float = Field(30.0, gt=0, description="Longest reconnect delay, seconds.")
    prefix: str = Field("ec", pattern=ID_PATTERN, description="Topic prefix.")
    tls: bool = Field(
        False, description="Connect over TLS (port 8883 by convention); on when ca_file is set."
    )
    ca_file: Path | None = Field(
        None,
        description="PEM CA certificate(s) the broker's certificate must chain to; none = the "
        "system's trusted CAs.",
    )
    cert_file: Path | None = Field(
        None, description="PEM client certificate, for brokers that require one (with key_file)."
    )
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")

    @model_validator(mode="after")
    def _client_cert_pair(self) -> MqttSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self

    @property
    def uses_tls(self) -> bool:
        """TLS is on when asked for, or implied by a CA or client certificate."""
        return self.tls or self.ca_file is not None or self.cert_file is not None


class ComponentSettings(BaseSettings):
    """Base for a component's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings layers file, environment and overrides itself; validation sees one dict.
        return (init_settings,)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    cls: type[S], path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> S:
    """Build ``cls`` from ``path`` (TOML), the environment and ``overrides`` (CLI flags).

    Precedence, lowest first: defaults, file, environment, overrides.
    """
    file_values = _read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "defaults/environment"
    try:
        _refuse_unknown_env(cls)
        env_values = EnvSettingsSource(cls)()
        values = _deep_merge(_deep_merge(file_values, env_values), overrides or {})
        return cls.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, cls)) from exc


def _refuse_unknown_env(cls: type[ComponentSettings]) -> None:
    """A variable with the component's prefix that names no setting is a typo (pydantic-settings
    would ignore it, and the default would run): refused, naming it and the nearest settings."""
    prefix = str(cls.model_config.get("env_prefix") or "").upper()
    if not prefix:
        return
    delimiter = str(cls.model_config.get("env_nested_delimiter") or "__")
    names = sorted(cls.model_fields)
    problems = []
    for key in sorted(os.environ):
        if not key.upper().startswith(prefix):
            continue
        head = key[len(prefix) :].split(delimiter, 1)[0].lower()
        if head in cls.model_fields:
            continue
        near = difflib.get_close_matches(head, names, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        problems.append(f"  {key}: no setting {head!r}{hint}")
    if problems:
        lines = [f"unknown environment variable(s) for {cls.__name__}:", *problems]
        raise ConfigError("\n".join(lines))


def _describe(exc: ValidationError, source: str, cls: type[BaseModel]) -> str:
    lines = [f"invalid configuration in {source} ({cls.__name__}):"]
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {where}: {err['msg']}{shown}")
    return "\n".join(lines)
