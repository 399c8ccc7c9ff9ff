"""The console's pages, one module per area of work; each attaches its routes to ``server.console.bp``."""
from . import (auth, common, conflicts, dashboard, exports, households, ledger, members, outreach, photos,  # noqa: F401
               requests, visits)
