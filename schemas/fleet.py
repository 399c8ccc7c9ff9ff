"""Fleet health on the wire: tablets with their flags, and the sync logs tablets upload."""
from __future__ import annotations

from marshmallow import fields, validate

from .accounts import DeviceListArgs, DeviceSchema
from .base import BaseSchema, DateTimeTZ, Str, page_schema

FLAGS = ["stale", "backlog"]


class FleetDevice(DeviceSchema):
    """A tablet with what it reported in its last push and the flags a coordinator should act on."""

    outbox_length = fields.Integer(allow_none=True, metadata={
        "description": "ops the tablet still held besides its last pushed batch, as it reported"})
    oldest_unsynced_at = DateTimeTZ(allow_none=True, metadata={
        "description": "recorded time of the oldest of those ops, corrected by the tablet's clock offset"})
    flags = fields.List(fields.String(validate=validate.OneOf(FLAGS)), metadata={
        "description": "`stale`: no sync for FLEET_STALE_DAYS; `backlog`: oldest unsynced op older than "
                       "FLEET_BACKLOG_HOURS"})


class FleetDeviceListArgs(DeviceListArgs):
    flag = Str(load_default=None, validate=validate.OneOf(FLAGS))


class DeviceLogUpload(BaseSchema):
    # Not ``Text``: a log is longer than a note; its limit is the DEVICE_LOG_MAX_BYTES setting.
    text = Str(required=True, limit=10_000_000)
    app_version = Str(load_default=None, allow_none=True)


class DeviceLogSummary(BaseSchema):
    id = fields.String()
    device_id = fields.String()
    created_at = DateTimeTZ()
    app_version = fields.String(allow_none=True)
    size_bytes = fields.Integer()


class DeviceLogSchema(DeviceLogSummary):
    text = fields.String()


FleetDevicePage = page_schema(FleetDevice, "FleetDevicePage")
DeviceLogPage = page_schema(DeviceLogSummary, "DeviceLogPage")
