"""Errors of ``edgecascade deploy``.

EdgeCascadeError (shared.errors)
 └── DeployError   a bad name, host or file given to a deploy command (the message names it)
"""

from __future__ import annotations

from edgecascade.shared.errors import EdgeCascadeError


class DeployError(EdgeCascadeError):
    """Input a deploy command cannot use; nothing was written for it."""
