"""The suite's verdict: one row per check (pass, fail or skip, and why), as a table or JSON."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome; ``detail`` says what was seen (or why it was skipped)."""

    name: str
    status: Status
    detail: str


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail)


def failed(name: str, detail: str) -> Check:
    return Check(name, Status.FAIL, detail)


def skipped(name: str, detail: str) -> Check:
    return Check(name, Status.SKIP, detail)


def expect(name: str, ok: bool, detail: str) -> Check:
    return passed(name, detail) if ok else failed(name, detail)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No check failed (skipped ones do not fail the run)."""
        return all(check.status is not Status.FAIL for check in self.checks)

    def status_of(self, name: str) -> Status | None:
        for check in self.checks:
            if check.name == name:
                return check.status
        return None

    def to_json(self) -> str:
        rows = [{**asdict(check), "status": check.status.value} for check in self.checks]
        return json.dumps({"checks": rows, "passed": self.passed}, indent=2) + "\n"

    def table(self, width: int = 100) -> str:
        """A fixed-width table: name, status, detail (wrapped)."""
        name_w = max([len(c.name) for c in self.checks] + [5])
        lines = [f"{'check':<{name_w}}  status  detail", f"{'-' * name_w}  ------  {'-' * 40}"]
        room = max(width - name_w - 10, 30)
        for check in self.checks:
            detail = check.detail or "-"
            chunks = textwrap.wrap(detail, room) or ["-"]
            lines.append(f"{check.name:<{name_w}}  {check.status.value:<6}  {chunks[0]}")
            lines += [f"{'':<{name_w}}          {chunk}" for chunk in chunks[1:]]
        counts = {s: sum(c.status is s for c in self.checks) for s in Status}
        lines.append(
            f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
            f"{counts[Status.SKIP]} skipped: {'PASSED' if self.passed else 'FAILED'}"
        )
        return "\n".join(lines)
