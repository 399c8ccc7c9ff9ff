"""Attachments: the state of an upload, as a PUT answers it."""
from __future__ import annotations

from marshmallow import fields

from .base import BaseSchema


class UploadStateSchema(BaseSchema):
    sha256 = fields.String(metadata={"description": "the file's SHA-256, its address"})
    received = fields.Integer(metadata={"description": "bytes held; equal to Upload-Offset"})
    total = fields.Integer(allow_none=True, metadata={"description": "the file's size, from Content-Range"})
    complete = fields.Boolean(metadata={"description": "true once the whole file arrived and its hash matched"})
