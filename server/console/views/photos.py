"""Photos and documents of visits and assistance logs, for the console's own session login."""
from __future__ import annotations

from ...api.attachments import file_response
from ...extensions import db
from ...services import attachments
from ...storage import current_storage
from .. import bp
from .common import scope


@bp.get("/attachments/<sha256>")
def attachment_file(sha256: str):
    """The file, when a record in the coordinator's scope refers to it."""
    found = attachments.download(db.session, current_storage(), scope(), sha256)
    return file_response(found.data, found.mimetype, found.sha256)


@bp.get("/attachments/<sha256>/thumbnail")
def attachment_thumbnail(sha256: str):
    """A small JPEG of an image attachment."""
    return file_response(attachments.thumbnail(db.session, current_storage(), scope(), sha256), "image/jpeg", sha256)
