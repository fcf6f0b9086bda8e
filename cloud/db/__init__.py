"""Storage: SQLAlchemy models (:mod:`.models`), engines (:mod:`.engine`), migrations
(:mod:`.migrate`).

The alerts' tables (:mod:`.alert_models`) are imported here so ``Base.metadata`` always has them.
"""

from edgecascade.cloud.db import alert_models as alert_models
