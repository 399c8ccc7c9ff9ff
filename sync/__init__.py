"""The sync engine: plain Python over a SQLAlchemy session, with no Flask and no marshmallow.

It never commits: the caller owns the transaction.
"""
from . import attachments as _attachments  # noqa: F401,E402  (keeps attachment references in step)
from . import changes as _changes  # noqa: F401  (registers the commit-time numbering of changes)
