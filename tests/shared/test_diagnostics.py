"""The diagnostics log ring: newest lines, bounded, and always fit for a reply."""

from __future__ import annotations

import logging

from edgecascade.shared.diagnostics import LINE_LIMIT, LogRing
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import ReplyMessage


def test_a_logged_nul_is_escaped_so_the_diagnostics_reply_stays_valid() -> None:
    ring = LogRing(capacity=3)
    logger = logging.getLogger("tests.diagnostics")
    logger.addHandler(ring)
    try:
        logger.warning("oldest")
        logger.warning("refused topic %s", "ec/v1/s1/cam\x00/result")  # hostile input, logged
        logger.warning("x" * (LINE_LIMIT + 50))
        logger.warning("newest")
    finally:
        logger.removeHandler(ring)
    lines = ring.tail(10)
    assert len(lines) == 3 and lines[-1].endswith("newest")  # bounded: "oldest" is gone
    assert "\x00" not in "".join(lines) and "cam\\x00/result" in lines[0]
    assert len(lines[1]) == LINE_LIMIT
    reply = ReplyMessage(correlation=new_message_id(), status="ok", data={"logs": lines})
    assert isinstance(reply.data, dict) and reply.data["logs"] == lines
