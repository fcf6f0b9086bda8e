"""Token buckets and per-device limits with an injected clock: no sleeping, no timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgecascade.gateway import ratelimit
from edgecascade.gateway.ratelimit import (
    RateLimiter,
    TokenBucket,
    absent_for,
    class_of,
    mark_alive,
)
from edgecascade.gateway.settings import GatewaySettings, RateLimitSettings
from edgecascade.shared.topics import Kind


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limits(**overrides: Any) -> RateLimitSettings:
    small = {"messages_per_s": 10, "burst_messages": 5, "bytes_per_s": 0, "burst_bytes": 1}
    fields: dict[str, Any] = {"result": small, "escalation": small}
    fields.update(overrides)
    return RateLimitSettings.model_validate(fields)


def test_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    taken = 0
    while bucket.holds(1, now=0.0):
        bucket.take(1)
        taken += 1
    assert taken == 3
    assert not bucket.holds(1, now=0.4)  # 0.8 tokens
    assert bucket.holds(1, now=0.5)  # 1.0
    bucket.take(1)
    assert bucket.holds(3, now=100.0) and not bucket.holds(3.5, now=100.0)  # capped at the burst


def test_bucket_credit_lifts_it_above_the_burst_once() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    bucket.credit(10.0, now=0.0)  # 20 on top of the 3
    assert bucket.holds(23, now=0.0) and not bucket.holds(23.5, now=0.0)
    bucket.take(23)
    assert not bucket.holds(1, now=0.0)
    bucket.credit(10.0, now=10.0)  # the refill of those 10 s is part of the credit, not extra
    assert bucket.holds(20, now=10.0) and not bucket.holds(20.5, now=10.0)
    bucket.take(20)
    # Above the burst it does not grow; spent below it, it refills to the burst only.
    assert bucket.holds(3, now=50.0) and not bucket.holds(3.5, now=50.0)


def test_a_zero_rate_is_unlimited_and_a_bad_bucket_is_refused() -> None:
    bucket = TokenBucket(rate=0.0, burst=1.0, now=0.0)
    for _ in range(1000):
        assert bucket.holds(10**9, now=0.0)
        bucket.take(10**9)
    with pytest.raises(ValueError, match=r"burst > 0, got 1\.0, 0"):
        TokenBucket(rate=1.0, burst=0, now=0.0)


def test_a_flooding_device_is_limited_and_its_neighbour_is_not() -> None:
    clock = Clock()
    limiter = RateLimiter(limits(), clock=clock)
    refused = [limiter.check("noisy", Kind.RESULT, 100) for _ in range(50)]
    assert sum(r is None for r in refused) == 5  # the burst
    # Another device, and another class of the same device, have budgets of their own.
    assert all(limiter.check("quiet", Kind.RESULT, 100) is None for _ in range(5))
    assert limiter.check("noisy", Kind.ESCALATION, 100) is None
    assert limiter.counts() == {"noisy.result": 45}
    clock.now += 0.25  # 2.5 more tokens
    assert sum(limiter.check("noisy", Kind.RESULT, 100) is None for _ in range(50)) == 2
    assert limiter.counts() == {"noisy.result": 93} and limiter.total() == 93


def test_one_dead_letter_per_device_class_and_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(limits(dead_letter_interval_s=10), clock=clock)
    excess = [limiter.check("noisy", Kind.RESULT, 100) for _ in range(30)][5:]
    reasons = [e.reason for e in excess if e is not None and e.reason is not None]
    assert len(excess) == 25 and len(reasons) == 1
    assert reasons[0].startswith(
        "rate limit: device 'noisy' exceeded its result limit of 10 messages/s (burst 5); "
        "1 result message(s) refused"
    )
    clock.now += 5.0  # refills 50 tokens (capped at 5), interval not over
    for _ in range(20):
        limiter.check("noisy", Kind.RESULT, 100)
    clock.now += 5.1  # the interval is over: the next excess is dead-lettered, with the count
    letters = [limiter.check("noisy", Kind.RESULT, 100) for _ in range(20)]
    reasons = [e.reason for e in letters if e is not None and e.reason is not None]
    assert len(reasons) == 1 and "40 result message(s) refused" in reasons[0]


def test_bytes_are_budgeted_too() -> None:
    clock = Clock()
    big = {"messages_per_s": 0, "burst_messages": 1, "bytes_per_s": 10_000, "burst_bytes": 100_000}
    limiter = RateLimiter(limits(telemetry=big), clock=clock)
    assert limiter.check("cam", Kind.TELEMETRY, 60_000) is None
    excess = limiter.check("cam", Kind.TELEMETRY, 60_000)  # 40,000 left
    assert excess is not None and excess.reason is not None
    assert "10000 bytes/s (burst 100000; this one 60000)" in excess.reason
    clock.now += 2.0
    assert limiter.check("cam", Kind.TELEMETRY, 60_000) is None


def test_a_device_back_from_an_absence_gets_its_backlog_through() -> None:
    clock = Clock()
    limiter = RateLimiter(limits(absence_s=30, catch_up_s=600), clock=clock)
    assert limiter.check("cam", Kind.RESULT, 100) is None
    clock.now += 60.0  # silent for a minute: 600 results owed, on top of the 4 left
    assert sum(limiter.check("cam", Kind.RESULT, 100) is None for _ in range(700)) == 604
    # A silence shorter than absence_s earns no credit: only the refill, capped at the burst.
    clock.now += 20.0
    assert sum(limiter.check("cam", Kind.RESULT, 100) is None for _ in range(700)) == 5
    # The credit is capped at catch_up_s.
    clock.now += 10_000.0
    assert sum(limiter.check("cam", Kind.RESULT, 10) is None for _ in range(10_000)) == 6000


def test_alternating_silences_and_bursts_get_no_more_than_the_rate() -> None:
    """The credit replaces the refill: a device that falls silent just long enough, then
    empties its bucket, again and again, gets its rate over the whole time and one burst."""
    clock = Clock()
    limiter = RateLimiter(limits(absence_s=30), clock=clock)
    passed = 0
    for _ in range(100):
        passed += sum(limiter.check("cam", Kind.RESULT, 1) is None for _ in range(1000))
        clock.now += 30.0
    # 100 bursts: the first bucket (5), then 99 silences of 30 s at 10/s.
    assert passed == 5 + 99 * 300


def test_a_restarted_gateway_credits_the_time_it_was_away(tmp_path: Path) -> None:
    mark = tmp_path / "gw" / "alive"
    assert absent_for(mark) == 0.0  # never ran
    mark_alive(mark)
    stamp = mark.stat().st_mtime
    assert absent_for(mark, now=stamp + 120.0) == 120.0
    assert absent_for(mark, now=stamp - 5.0) == 0.0  # a clock behind the mark
    clock = Clock()
    limiter = RateLimiter(limits(absence_s=30), absent_for=120.0, clock=clock)
    assert sum(limiter.check("cam", Kind.RESULT, 1) is None for _ in range(2000)) == 1205
    # A device first heard later gets the gateway's time away, not the time since the start.
    clock.now += 3600.0
    assert sum(limiter.check("late", Kind.RESULT, 1) is None for _ in range(2000)) == 1205
    fresh = RateLimiter(limits(absence_s=30), clock=clock)
    clock.now += 3600.0
    assert sum(fresh.check("new", Kind.RESULT, 1) is None for _ in range(2000)) == 5


def test_kind_classes() -> None:
    assert [class_of(k) for k in (Kind.RESULT, Kind.ESCALATION, Kind.TELEMETRY)] == [
        "result",
        "escalation",
        "telemetry",
    ]
    assert class_of(Kind.STATE) == class_of(Kind.MODEL) == class_of(Kind.REPLY) == "other"


def test_a_burst_below_the_largest_payload_is_refused() -> None:
    below = r"escalation\.burst_bytes 5 is below .*\(4194304 bytes\)"
    with pytest.raises(ValidationError, match=below):
        GatewaySettings.model_validate({"rate_limits": {"escalation": {"burst_bytes": 5}}})
    # Unlimited bytes need no burst.
    limits(escalation={"bytes_per_s": 0, "burst_bytes": 5})
    # One field overrides alone; the others keep their defaults.
    settings = GatewaySettings.model_validate({"rate_limits": {"result": {"messages_per_s": 5}}})
    assert settings.rate_limits.result.messages_per_s == 5
    assert settings.rate_limits.result.burst_messages == RateLimitSettings().result.burst_messages


def test_made_up_device_ids_cannot_grow_the_table_without_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_DEVICES", 3)
    clock = Clock()
    limiter = RateLimiter(limits(), clock=clock)
    for n in range(10):
        for _ in range(6):  # one over the burst each
            limiter.check(f"made-up-{n}", Kind.RESULT, 1)
    assert len(limiter._devices) == 3 and set(limiter._devices) == {
        "made-up-7",
        "made-up-8",
        "made-up-9",
    }
    # The total counts them all; the per-device counts are those of the devices tracked, and
    # the telemetry names only the most refused.
    assert limiter.total() == 10 and len(limiter.counts()) == 3
    limiter.check("made-up-9", Kind.RESULT, 1)
    assert limiter.counts(top=1) == {"made-up-9.result": 2}


def test_a_device_of_its_own_keeps_the_site_budget_for_what_it_does_not_name() -> None:
    clock = Clock()
    overrides = {"fast": {"result": {"messages_per_s": 100, "burst_messages": 50}}}
    limiter = RateLimiter(limits(devices=overrides), clock=clock)
    checked = [limiter.check("fast", Kind.RESULT, 1) for _ in range(100)]
    assert checked.count(None) == 50
    reasons = [e.reason for e in checked if e is not None and e.reason is not None]
    assert len(reasons) == 1 and "limit of 100 messages/s (burst 50)" in reasons[0]
    assert sum(limiter.check("fast", Kind.ESCALATION, 1) is None for _ in range(100)) == 5
    assert sum(limiter.check("slow", Kind.RESULT, 1) is None for _ in range(100)) == 5
    with pytest.raises(ValidationError, match=r"devices\.cam7\.escalation\.burst_bytes 9 is below"):
        limits(devices={"cam7": {"escalation": {"bytes_per_s": 1, "burst_bytes": 9}}})
    with pytest.raises(ValidationError, match="should match pattern"):
        limits(devices={"cam/7": {}})
