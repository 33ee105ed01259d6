"""Every table, imported in one place so that Base.metadata is complete (Alembic, tests)."""

from boxoffice.accounts import models as accounts_models  # noqa: F401
from boxoffice.audit import models as audit_models  # noqa: F401
from boxoffice.db import Base
from boxoffice.worker import models as worker_models  # noqa: F401

metadata = Base.metadata
