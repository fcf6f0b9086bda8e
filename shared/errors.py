"""Errors raised by the shared contract.

EdgeCascadeError
 ├── ConfigError        invalid or unreadable configuration (names the field and the file)
 ├── ContractError      a topic or payload that breaks the contract
 │    └── FrameCodecError  an escalation frame that cannot be decoded
 ├── ModelError         a model file or card that cannot be used (names the file)
 ├── BrokerError        the MQTT broker refused or dropped us
 └── CommitError        a batch of received messages could not be committed (shared.consumer)
      ├── TransientCommitError  the store is unavailable: the batch is committed again later
      └── PermanentCommitError  the data cannot be stored: committed message by message
"""

from __future__ import annotations


class EdgeCascadeError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(EdgeCascadeError):
    """Configuration that cannot be used; the message names the field and the source."""


class ContractError(EdgeCascadeError):
    """A topic or a payload that does not follow the shared contract."""


class FrameCodecError(ContractError):
    """Bytes that are not a valid escalation frame."""


class ModelError(EdgeCascadeError):
    """A model file or model card that cannot be loaded or run."""


class BrokerError(EdgeCascadeError):
    """The MQTT broker could not be reached or refused the connection."""


class CommitError(EdgeCascadeError):
    """A batch of received messages could not be committed; none of it is acknowledged."""


class TransientCommitError(CommitError):
    """The store failed for a reason that passes (connection lost, disk full): retry later."""


class PermanentCommitError(CommitError):
    """The store refused the data itself: retrying the same batch cannot succeed."""
