"""Storage: SQLAlchemy models (:mod:`.models`), engines (:mod:`.engine`), migrations
(:mod:`.migrate`)."""
