"""Errors raised by the cloud service.

They say what went wrong in the cloud's own terms and know nothing of HTTP: the API maps each
class that a request can cause to its status code in one table, ``cloud/api/errors.py``; the CLI
prints any of them (``edgecascade`` catches :class:`~shared.errors.EdgeCascadeError`). A class
that is not in the table is a server fault and stays a 500.

EdgeCascadeError                  (shared.errors)
 └── CloudError                   anything the cloud service raises on purpose
      ├── StoreError              the database or blob store cannot be used as configured
      ├── MigrationError          the database schema could not be brought up to date
      ├── DatasetError            a verdict dataset that cannot be used or exported (cloud.dataset,
      │                           cloud.export: an unknown site, an empty selection)
      ├── LabelError              a label override that cannot be set (cloud.labels)
      │    ├── LabelRejected      not one of the edge model's labels, or those unknown -> 422
      │    └── EscalationNotFound no such escalation (or no override to withdraw)   -> 404
      ├── TrainingError           a training run that cannot be queued or done (cloud.training)
      │    ├── TrainingInvalid    a run that cannot be queued (no such site)       -> 422
      │    ├── TrainingNotFound   no such training run                             -> 404
      │    └── TrainingFailed     a run that failed; the message is its reason
      ├── TokenError              an API token that cannot be created or revoked (cloud.auth)
      │    ├── TokenInvalid       a name that is no valid id, an unknown role      -> 422
      │    ├── TokenExists        a token of that name exists                      -> 409
      │    └── TokenNotFound      no token of that name                            -> 404
      ├── RegistryError           the model registry refuses (cloud.registry)
      │    ├── ModelTooLarge      beyond registry.max_model_mb                     -> 413
      │    ├── ModelRejected      does not load, bad card, labels or golden image  -> 422
      │    ├── ModelExists        that name and version, or those bytes, exist     -> 409
      │    ├── ModelNotFound      no such name and version                         -> 404
      │    ├── TooFewVerdicts     not enough verdicts to calibrate on              -> 422
      │    └── SigningKeyUnavailable  no readable manifest signing key             -> 503
      ├── DeliveryError           one alert notification attempt failed (cloud.alerts.channels)
      ├── FleetError              remote config, tags and commands (cloud.fleet)
      │    └── FleetInvalid       a bad target, tag, tag expression or config      -> 422
      │         └── TagSyntaxError  a tag expression that does not parse (position) -> 422
      └── RolloutError            a rollout that cannot start or change (cloud.rollouts)
           ├── RolloutInvalid     stages, criteria or targets that cannot be used  -> 422
           ├── RolloutNotFound    no such rollout, or no such model to roll out    -> 404
           └── RolloutConflict    not now: the rollout's state or the fleet's says no -> 409
"""

from __future__ import annotations

from edgecascade.shared.errors import EdgeCascadeError


class CloudError(EdgeCascadeError):
    """Root of the cloud service's errors."""


class DatasetError(CloudError):
    """A verdict dataset that cannot be used; the message names the file (and manifest line)."""


class LabelError(CloudError):
    """A label override that cannot be set or withdrawn as asked."""


class LabelRejected(LabelError):
    """A label that is not one of the edge model's labels (the message names it and the allowed
    ones), or an edge model whose labels the cloud does not know."""


class EscalationNotFound(LabelError):
    """No escalation of that id, or no override of it to withdraw."""


class TrainingError(CloudError):
    """A training run that cannot be queued, found or done."""


class TrainingInvalid(TrainingError):
    """A run that cannot be queued: the site is not known."""


class TrainingNotFound(TrainingError):
    """No training run of that id."""


class TrainingFailed(TrainingError):
    """A run that cannot go on: no parent, no trainable source, a fine-tune that failed, ..."""


class StoreError(CloudError):
    """The database or the blob store cannot be used (unsupported URL, unsafe path, ...)."""


class MigrationError(CloudError):
    """Running the Alembic migrations failed; the message names the database."""


class TokenError(CloudError):
    """A token that cannot be created or revoked as asked (the message says why)."""


class TokenInvalid(TokenError):
    """A token name that is not a valid id, or a role that does not exist."""


class TokenExists(TokenError):
    """A token of that name exists already (revoked or not)."""


class TokenNotFound(TokenError):
    """No token of that name."""


class RegistryError(CloudError):
    """The model registry refuses an upload, a calibration or a signing."""


class ModelTooLarge(RegistryError):
    """An upload larger than ``registry.max_model_mb``."""


class ModelRejected(RegistryError):
    """An upload the registry cannot take: it does not load, or its card, labels, golden image
    or manifest are not usable."""


class ModelExists(RegistryError):
    """The name and version, or the very bytes, are registered already."""


class ModelNotFound(RegistryError):
    """No registered model of that name and version."""


class TooFewVerdicts(RegistryError):
    """A calibration asked for on fewer verdicts than it needs."""


class SigningKeyUnavailable(RegistryError):
    """No manifest signing key, or one that cannot be read: the registry cannot sign."""


class RolloutError(CloudError):
    """A rollout that cannot be started or changed as asked."""


class RolloutInvalid(RolloutError):
    """A request whose stages, criteria or targets cannot be used."""


class RolloutNotFound(RolloutError):
    """No such rollout, or no registered model of the name and version to roll out."""


class RolloutConflict(RolloutError):
    """Not now: the rollout is in another state, or the fleet does not allow it (the targets run
    the model already, their baseline is not registered, ...)."""


class DeliveryError(CloudError):
    """One delivery attempt of an alert notification failed; the message says why (the sender
    retries with backoff)."""


class FleetError(CloudError):
    pass


class FleetInvalid(FleetError, ValueError):
    """A ValueError too: pydantic validators (a rollout request's tags) raise it as a 422."""


class TagSyntaxError(FleetInvalid):
    """A tag expression that does not parse; ``position`` is 1-based (characters)."""

    def __init__(self, expression: str, position: int, problem: str) -> None:
        super().__init__(f"tag expression {expression!r}: {problem} at position {position}")
        self.position = position
