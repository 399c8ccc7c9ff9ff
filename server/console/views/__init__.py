"""The console's pages, one module per area of work; each attaches its routes to ``server.console.bp``."""
from . import (  # noqa: F401
               auth,
               common,
               conflicts,
               dashboard,
               exports,
               households,
               ledger,
               members,
               outreach,
               photos,
               requests,
               visits,
)
