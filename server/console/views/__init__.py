"""The console's pages, one module per area of work; each attaches its routes to ``server.console.bp``."""
from . import auth, common, dashboard, exports, households, members, requests  # noqa: F401
