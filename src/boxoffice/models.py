"""Every table, imported in one place so that Base.metadata is complete (Alembic, tests)."""

from boxoffice.accounts import models as accounts_models  # noqa: F401
from boxoffice.analytics import models as analytics_models  # noqa: F401
from boxoffice.audit import models as audit_models  # noqa: F401
from boxoffice.catalog import models as catalog_models  # noqa: F401
from boxoffice.db import Base
from boxoffice.inventory import models as inventory_models  # noqa: F401
from boxoffice.orders import models as orders_models  # noqa: F401
from boxoffice.payments import models as payments_models  # noqa: F401
from boxoffice.tickets import models as tickets_models  # noqa: F401
from boxoffice.worker import models as worker_models  # noqa: F401

metadata = Base.metadata
