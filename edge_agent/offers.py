"""Which signed model offers a device still accepts: newer ones, not expired ones.

A valid signature says the cloud once sent an offer; it does not say the cloud still means it. An
offer captured on the wire and replayed later would, on its signature alone, take a device back to
the older model it names. Each offer's manifest therefore carries a ``sequence`` (increasing with
every offer the cloud signs) and an ``expires_at``, both under the signature. The ledger keeps the
highest sequence the device accepted, and the model it was for, in ``<slots>/offers.json``
(replaced atomically, so a reboot keeps it):

- an offer below that sequence is refused as a replay;
- the same sequence for the same model is accepted again (an offer re-sent, a download resumed);
  for another model it is refused;
- an offer past its ``expires_at`` on the device's clock is refused (a device whose clock runs far
  ahead refuses valid offers, and says which times it compared);
- a manifest without a sequence (from a cloud before sequences) is accepted only while the device
  has accepted no sequenced one.

A rollback is an ordinary newer offer whose manifest is signed with ``rollback: true``: going back
to an older model takes a fresh signature from the cloud, never a replay.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from edgecascade.shared.model_messages import ModelManifest

logger = logging.getLogger(__name__)


class OfferRefused(Exception):
    """An offer the ledger does not accept; the message is the reason the device acks."""


class OfferLedger:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self.sequence, self.sha256 = self._read()

    def _read(self) -> tuple[int, str]:
        try:
            raw = json.loads(self.path.read_text())
            return int(raw["sequence"]), str(raw["sha256"])
        except FileNotFoundError:
            return 0, ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable: keep refusing unsequenced offers rather than start from zero silently.
            logger.error("%s unreadable (%s): accepting only sequenced offers", self.path, exc)
            return 1, ""

    def admit(self, manifest: ModelManifest) -> None:
        """Accept ``manifest`` (and remember it) or raise :class:`OfferRefused` with the reason."""
        m = manifest
        now = self._clock()
        if m.expires_at is not None and now > m.expires_at:
            raise OfferRefused(
                f"offer of {m.name} {m.version} expired at {m.expires_at:.0f}; the device clock "
                f"says {now:.0f}"
            )
        if m.sequence < self.sequence or (m.sequence == 0 and self.sequence > 0):
            raise OfferRefused(
                f"offer of {m.name} {m.version} has sequence {m.sequence}, below {self.sequence} "
                "already accepted: a replayed old offer"
            )
        if m.sequence and m.sequence == self.sequence and m.sha256 != self.sha256:
            raise OfferRefused(
                f"offer of {m.name} {m.version} reuses sequence {m.sequence} of another model"
            )
        if m.sequence > self.sequence:
            self._write(m.sequence, m.sha256)
        if m.rollback:
            logger.warning("offer %d is a signed rollback to %s %s", m.sequence, m.name, m.version)

    def _write(self, sequence: int, sha256: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sequence": sequence, "sha256": sha256}))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.sequence, self.sha256 = sequence, sha256
