"""A reference tablet client for the Lianhu sync protocol, and a fleet simulator that checks the server."""
from .store import Store
from .tablet import Backoff, DeviceRevoked, ProtocolError, SyncReport, SyncUnavailable, Tablet, UpdateRequired
from .transport import ApiError, NetworkError, Transport

__all__ = ["ApiError", "Backoff", "DeviceRevoked", "NetworkError", "ProtocolError", "Store", "SyncReport",
           "SyncUnavailable", "Tablet", "Transport", "UpdateRequired"]
