"""The console's pages, one module per area of work; each attaches its routes to ``server.console.bp``."""
from . import auth, common, conflicts, dashboard, exports, households, ledger, members, photos, requests, visits  # noqa: F401
