"""Remote configuration on the agent: the settings an operator may change while it runs.

The cloud sends a versioned document (``cmd/config``: ``{"version": n, "settings": {...}}``)
whose keys are a subset of the agent's settings (:data:`LIVE_KEYS`): the escalation policy (rules,
thresholds, budget, cooldown, audit fraction, the detection rules), ``source.fps``, the scene gate,
the zones and the telemetry interval. Everything else (the model, the broker, the data directory,
the source itself) needs a restart and is refused with the key named.

A document describes the whole live state: it is laid over the settings the agent started with
(file, environment, flags), not over the previous document, so a key left out of version 5 goes
back to its start-up value. The merged settings are validated by :class:`AgentSettings` itself
(ranges, the detection band, zone polygons): one bad value refuses the whole document and the
previous one keeps running. An accepted document is written to ``<data_dir>/live-config.json``
(atomic replace) and laid over the start-up settings again at the next start.

:class:`LiveSettings` holds the settings in force; the agent's parts read it through
:attr:`LiveSettings.current` (one reference read: a part sees the old or the new settings whole,
never half of each) and the loop, the emit thread and the frame feed pick a change up between two
frames.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgecascade.edge_agent.settings import AgentSettings
from edgecascade.shared.errors import ConfigError

logger = logging.getLogger(__name__)

LIVE_FILE = "live-config.json"
ANY = None  # every key below this one may change live
LiveKeys = Mapping[str, "LiveKeys | None"]
LIVE_KEYS: LiveKeys = {
    "escalation": dict.fromkeys(
        (
            "mode",
            "threshold",
            "class_thresholds",
            "margin",
            "entropy",
            "cooldown_s",
            "cooldown_distance",
            "budget_per_minute",
            "burst",
            "audit_fraction",
            "detection",
        ),
        ANY,
    ),
    "source": {"fps": ANY},
    "gating": ANY,
    "zones": ANY,
    "zone_anchor": ANY,
    "telemetry_interval_s": ANY,
}
"""The settings that may change without a restart, as a tree of keys (``ANY``: the whole
subtree)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """A document in force: its version, the document and the settings it produced."""

    version: int
    document: dict[str, Any]
    settings: AgentSettings


def check_keys(document: Mapping[str, Any], allowed: LiveKeys = LIVE_KEYS, at: str = "") -> None:
    """Refuse a key that is not a setting, or one that is but cannot change live."""
    for key, value in document.items():
        path = f"{at}{key}"
        if key not in allowed:
            if _is_setting(path):
                raise ConfigError(
                    f"{path} cannot change while the agent runs (restart it with the new value "
                    f"in its config file); live keys: {_live_paths()}"
                )
            raise ConfigError(f"{path} is not a setting of the agent; live keys: {_live_paths()}")
        below = allowed[key]
        if below is ANY:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} is a section: expected a table of keys, got {value!r}")
        check_keys(value, below, f"{path}.")


def _is_setting(path: str) -> bool:
    model: type[BaseModel] | None = AgentSettings
    for part in path.split("."):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = None
    return True


def _live_paths(allowed: LiveKeys = LIVE_KEYS, at: str = "") -> list[str]:
    paths: list[str] = []
    for key, below in allowed.items():
        paths.extend([f"{at}{key}"] if below is ANY else _live_paths(below, f"{at}{key}."))
    return paths


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build(base: AgentSettings, version: int, document: Mapping[str, Any]) -> Applied:
    """The settings ``document`` gives laid over ``base``; :class:`ConfigError` naming the key
    and the reason when a key is not live or a value is out of range."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"config version must be an integer >= 1, got {version!r}")
    check_keys(document)
    try:
        settings = AgentSettings.model_validate(_merge(base.model_dump(), document))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(settings)"
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            problems.append(f"{where}: {err['msg']}{shown}")
        raise ConfigError("; ".join(problems)) from exc
    return Applied(version, json.loads(json.dumps(document)), settings)


class LiveSettings:
    """The agent's settings in force, swapped whole when a new document is applied."""

    def __init__(self, base: AgentSettings) -> None:
        self.base = base
        self._lock = threading.Lock()
        self._applied: Applied | None = None
        self._current = base
        self.path: Path = base.data_dir / LIVE_FILE

    @property
    def current(self) -> AgentSettings:
        return self._current

    @property
    def version(self) -> int | None:
        """The version of the document in force; None while the start-up settings run."""
        applied = self._applied
        return applied.version if applied else None

    def check(self, version: int, document: Mapping[str, Any]) -> Applied:
        """``document`` validated over the start-up settings, not applied; :class:`ConfigError`
        with the reason when it is refused."""
        return build(self.base, version, document)

    def apply(self, applied: Applied) -> None:
        """Persist, then swap (a checked document: :meth:`check`)."""
        version = applied.version
        with self._lock:
            self._write(applied)
            self._applied, self._current = applied, applied.settings
        logger.info("live config version %d applied: %s", version, applied.document)

    def restore(self) -> None:
        """Lay the persisted document over the start-up settings (at start). One that no longer
        validates (the start-up settings changed) is logged and left unused."""
        try:
            saved = json.loads(self.path.read_text())
            applied = build(self.base, saved["version"], saved["settings"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            logger.warning("live config %s not applied: %s", self.path, exc)
            return
        self._applied, self._current = applied, applied.settings
        logger.info("live config version %d restored from %s", applied.version, self.path)

    def _write(self, applied: Applied) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump({"version": applied.version, "settings": applied.document}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
