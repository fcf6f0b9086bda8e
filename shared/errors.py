"""The root of every error EdgeCascade raises on purpose, and the errors of the shared contract.

One tree: every package's errors derive from :class:`EdgeCascadeError`, so a caller (the
``edgecascade`` CLI, a test) catches them all with one class. Each package draws its own part in
its errors module's docstring, marked here with the module that continues it; a test
(``tests/shared/test_errors.py``) checks that every error class is drawn under its parent.

EdgeCascadeError
 ├── ConfigError          invalid or unreadable configuration (names the field and the file)
 ├── ContractError        a topic or payload that breaks the contract
 │    ├── FrameCodecError an escalation frame that cannot be decoded
 │    └── ManifestError   unsigned, forged, not matching its model; a bad key (shared.manifest)
 ├── ModelError           a model file or card that cannot be used (names the file)
 ├── AcceleratorError     a delegate library that fails to load or to take the model
 ├── BrokerError          the MQTT broker refused or dropped us
 ├── CommitError          received messages that could not be committed (shared.consumer)
 │    ├── TransientCommitError  the store is unavailable: the batch is committed again later
 │    │    └── DiskFullError     the outbox's disk is full (shared.outbox.Outbox.put_many)
 │    └── PermanentCommitError  the data cannot be stored: committed message by message
 ├── AgentError           the edge agent's          -> drawn in edgecascade.edge_agent.errors
 ├── CameraBuildError     the browser camera page could not be built (edgecascade.camera.build)
 ├── CloudError           tokens, registry, rollouts -> drawn in edgecascade.cloud.errors
 └── DeployError          ``edgecascade deploy``'s  -> drawn in edgecascade.deploy.errors

The gateway has no error classes of its own; it raises the shared ones.
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


class AcceleratorError(EdgeCascadeError):
    """An accelerator delegate (Edge TPU, GPU, NPU library) that cannot be loaded or cannot run
    the model; the message names the library and the reason. Not a :class:`ModelError`: the
    model is sound, the device's accelerator is not, so no model slot is given up for it."""


class BrokerError(EdgeCascadeError):
    """The MQTT broker could not be reached or refused the connection."""


class CommitError(EdgeCascadeError):
    """A batch of received messages could not be committed; none of it is acknowledged."""


class TransientCommitError(CommitError):
    """The store failed for a reason that passes (connection lost, disk full): retry later."""


class DiskFullError(TransientCommitError):
    """The outbox could not commit because its disk (or SQLite's page limit) is full; nothing of
    the group was kept. Transient: the group commits once space returns."""


class PermanentCommitError(CommitError):
    """The store refused the data itself: retrying the same batch cannot succeed."""
