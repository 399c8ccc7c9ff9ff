"""Photos and documents: ``HEAD``/``PUT``/``GET /api/v1/attachments/{sha256}`` and thumbnails."""
from __future__ import annotations

import io

from flask import Response, current_app, request, send_file
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.attachments import UploadStateSchema

from ..auth import current_scope
from ..extensions import db
from ..services import attachments
from ..storage import current_storage

blp = Blueprint("attachments", __name__, url_prefix="/api/v1/attachments", description="Photos and documents")
BLUEPRINTS = (blp,)

# A file is the same bytes forever, but who may read it changes with pairings: browsers may keep it an
# hour, shared caches never.
CACHE = "private, max-age=3600"
SANDBOX = "default-src 'none'; sandbox"


def file_response(data: bytes, mimetype: str, sha256: str) -> Response:
    inline = mimetype.startswith("image/") or mimetype == "application/pdf"
    response = send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=not inline, download_name=sha256,
                         conditional=True, etag=sha256, max_age=3600)
    response.headers["Cache-Control"] = CACHE
    response.headers["Content-Security-Policy"] = SANDBOX
    return response


@blp.route("/<string:sha256>")
class AttachmentBySha(MethodView):
    @blp.response(200, description="held in full; Upload-Offset is its size")
    @blp.alt_response(404, description="not held; Upload-Offset says how many bytes of an upload arrived")
    def head(self, sha256):
        """Whether the server holds the file, and how far an interrupted upload got (``Upload-Offset``)."""
        found = attachments.held(db.session, current_storage(), current_scope(), sha256)
        return Response(status=200, headers=found.headers)

    @blp.response(200, UploadStateSchema)
    @blp.alt_response(409, description="conflict: the piece does not start at Upload-Offset")
    @blp.alt_response(413, description="body_too_large: past ATTACHMENT_MAX_BYTES")
    @blp.alt_response(422, description="hash_mismatch, or an unreadable Content-Range")
    def put(self, sha256):
        """Upload a file, or its next piece with ``Content-Range: bytes START-END/TOTAL`` (a device's call)."""
        limit = current_app.config["ATTACHMENT_MAX_BYTES"]
        request.max_content_length = limit  # this route only: other bodies stay at MAX_BODY_BYTES
        result = attachments.upload(db.session, current_storage(), current_scope(), sha256,
                                    request.headers.get("Content-Range"), request.content_length,
                                    request.stream, limit)
        return result, 200, result.headers

    @blp.response(200, content_type="application/octet-stream", description="the file")
    @blp.alt_response(404, description="not held, or no record in the caller's scope refers to it")
    def get(self, sha256):
        """The file, for callers whose scope holds a record that refers to it."""
        found = attachments.download(db.session, current_storage(), current_scope(), sha256)
        return file_response(found.data, found.mimetype, found.sha256)


@blp.route("/<string:sha256>/thumbnail")
class AttachmentThumbnail(MethodView):
    @blp.response(200, content_type="image/jpeg", description="a JPEG at most 320 pixels on its longer side")
    @blp.alt_response(404, description="not held, out of scope, or not an image")
    def get(self, sha256):
        """A small JPEG of an image attachment, for the coordinators' console."""
        data = attachments.thumbnail(db.session, current_storage(), current_scope(), sha256)
        return file_response(data, "image/jpeg", sha256)
