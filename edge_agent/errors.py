"""Errors of the edge agent.

EdgeCascadeError   (shared.errors)
 └── AgentError    anything the edge agent raises on purpose
      └── SourceError   a frame source that cannot be opened or read
"""

from __future__ import annotations

from edgecascade.shared.errors import EdgeCascadeError


class AgentError(EdgeCascadeError):
    """Root of the edge agent's errors."""


class SourceError(AgentError):
    """A frame source that cannot be opened or read."""
