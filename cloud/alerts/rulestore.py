"""The rules in force: the set stored over the API, else the settings' defaults."""

from __future__ import annotations

from sqlalchemy.orm import Session

from edgecascade.cloud.alerts.config import AlertRule, RuleSet
from edgecascade.cloud.db.alert_models import AlertRuleSet

CURRENT = "current"  # the one row's id


def current_rules(session: Session, defaults: list[AlertRule]) -> tuple[list[AlertRule], str]:
    """The rules and where they come from: ``api`` (stored) or ``settings`` (the defaults).

    Stored rules were validated when they were put; they are validated again here so a row
    edited by hand cannot feed the evaluator something it does not understand.
    """
    row = session.get(AlertRuleSet, CURRENT)
    if row is None:
        return list(defaults), "settings"
    return RuleSet.model_validate({"rules": row.rules}).rules, "api"


def store_rules(session: Session, rules: RuleSet, by: str, now: float) -> None:
    """Replace the stored rules (an empty list is a valid set: no alerts)."""
    data = [rule.model_dump(mode="json") for rule in rules.rules]
    row = session.get(AlertRuleSet, CURRENT)
    if row is None:
        session.add(AlertRuleSet(id=CURRENT, rules=data, updated_at=now, updated_by=by))
    else:
        row.rules, row.updated_at, row.updated_by = data, now, by
    session.commit()
