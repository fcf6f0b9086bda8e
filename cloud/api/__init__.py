"""The HTTP API: dependencies (:mod:`.deps`), response schemas (:mod:`.schemas`), one router per
resource in :mod:`.routes`."""
