"""Topic injection through configuration: every id a component reads from its config file.

Ids become topic levels, MQTT client ids and directory names. One with ``/``, ``+``, ``#``, NUL,
more than 64 characters, or ``.``/``..`` (a valid MQTT level but a directory climb) must stop
the component at start-up with an error that names the field, the file and the value, instead of
subscribing to the wrong topics (``+`` matches every device) or failing later.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgecascade.cloud.settings import CloudSettings
from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.gateway.settings import GatewaySettings
from edgecascade.shared.config import ComponentSettings, load_settings
from edgecascade.shared.errors import ConfigError
from edgecascade.shared.topics import validate_id
from tests.fuzz.strategies import SCALE

HOSTILE = ["cam/1", "+", "#", "cam\x00", "x" * 65, ".", "..", "", "cam 1", "ca\u0301m", "$SYS"]
# (settings class, TOML section or "", field) for every id of every component
ID_FIELDS: list[tuple[type[ComponentSettings], str, str]] = [
    (AgentSettings, "", "site"),
    (AgentSettings, "", "device"),
    (AgentSettings, "", "gateway_id"),
    (AgentSettings, "mqtt", "prefix"),
    (GatewaySettings, "", "site"),
    (GatewaySettings, "", "gateway_id"),
    (GatewaySettings, "site_mqtt", "prefix"),
    (GatewaySettings, "cloud_mqtt", "prefix"),
    (CloudSettings, "", "client_id"),
    (CloudSettings, "mqtt", "prefix"),
    (CloudSettings, "ingest", "share_group"),
    (CloudSettings, "worker", "share_group"),
    (CloudSettings, "worker", "worker_id"),
]


def _toml(section: str, field: str, value: str) -> str:
    line = f"{field} = {json.dumps(value)}\n"  # a JSON string is a TOML basic string
    return f"[{section}]\n{line}" if section else line


@pytest.mark.parametrize(
    ("cls", "section", "field"), ID_FIELDS, ids=[f"{c.__name__}.{s}.{f}" for c, s, f in ID_FIELDS]
)
@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:12] for v in HOSTILE])
def test_a_hostile_id_in_a_config_file_is_refused_by_name(
    cls: type[ComponentSettings], section: str, field: str, value: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_toml(section, field, value), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(cls, path)
    message = str(caught.value)
    assert str(path) in message
    assert (f"{section}.{field}" if section else field) in message
    assert repr(value)[:40] in message


@settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.text(max_size=80))
@example(value="...")
@example(value="a" * 64)
def test_config_and_topics_agree_on_what_an_id_is(value: str, tmp_path: Path) -> None:
    """What the config accepts is exactly what the topic grammar accepts, so a component that
    started never fails later on its own id."""
    try:
        validate_id(value, "device id")
        valid = True
    except Exception:
        valid = False
    path = tmp_path / "agent.toml"
    try:
        path.write_text(_toml("", "device", value), encoding="utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate cannot even be written to a file
    try:
        settings_ = load_settings(AgentSettings, path)
    except ConfigError:
        assert not valid, value
        return
    assert valid and settings_.device == value
