from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from edgecascade.shared.config import ComponentSettings, MqttSettings, load_settings
from edgecascade.shared.errors import ConfigError


class DemoSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="EC_DEMO_")

    site: str = Field("site1", description="Site id.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_precedence_defaults_file_env_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'site = "from-file"\n[mqtt]\nhost = "file-host"\nport = 1000\n')
    monkeypatch.setenv("EC_DEMO_MQTT__PORT", "2000")
    settings = load_settings(DemoSettings, path, {"mqtt": {"keepalive": 90}})
    assert settings.site == "from-file"
    assert settings.mqtt.host == "file-host"
    assert settings.mqtt.port == 2000  # environment beats the file
    assert settings.mqtt.keepalive == 90  # flags beat both
    assert load_settings(DemoSettings).mqtt.port == 2000


def test_unknown_key_names_field_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nhots = 'typo'\n")
    with pytest.raises(ConfigError) as info:
        load_settings(DemoSettings, path)
    assert str(path) in str(info.value)
    assert "mqtt.hots" in str(info.value)


def test_bad_value_names_field_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"mqtt\.port: .*65535.* \(got 70000\)"):
        load_settings(DemoSettings, path)


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EC_DEMO_MQTT__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_settings(DemoSettings)


def test_an_unknown_environment_variable_is_refused_with_the_nearest_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EC_DEMO_STIE", "typo")  # would silently leave site at its default
    monkeypatch.setenv("EC_DEMO_MQTT__PORT", "2000")  # known: fine
    with pytest.raises(ConfigError) as info:
        load_settings(DemoSettings)
    assert "EC_DEMO_STIE: no setting 'stie' (did you mean site?)" in str(info.value)
    monkeypatch.delenv("EC_DEMO_STIE")
    assert load_settings(DemoSettings).mqtt.port == 2000


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(DemoSettings, tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(DemoSettings, write(tmp_path, "site = \n"))
