"""Errors of the engine and the services. Each carries a stable ``code``; HTTP statuses live in the server."""
from __future__ import annotations

from typing import Any


class LianhuError(Exception):
    code = "error"
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationFailedError(LianhuError):
    code = "validation_failed"
    default_message = "The input is not valid."


class NotFoundError(LianhuError):
    code = "not_found"
    default_message = "No such record."


class ForbiddenError(LianhuError):
    code = "forbidden"
    default_message = "You may not do this."


class UnauthenticatedError(LianhuError):
    code = "unauthenticated"
    default_message = "A valid token is required."


class InvalidCredentialsError(LianhuError):
    code = "invalid_credentials"
    default_message = "Wrong username or password."


class DeviceRevokedError(LianhuError):
    code = "device_revoked"
    default_message = "This tablet was revoked; wipe its data."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message, {"wipe": True, **(details or {})})


class ConflictError(LianhuError):
    code = "conflict"
    default_message = "The request conflicts with the current state."


class UsernameTakenError(LianhuError):
    code = "username_taken"
    default_message = "That username is taken."


class SchemaUnsupportedError(LianhuError):
    code = "schema_unsupported"
    default_message = "This app's schema version is not supported; update the app."


class CodeUsedError(LianhuError):
    code = "code_used"
    default_message = "This enrollment code was used or has expired."


class InvalidCursorError(LianhuError):
    code = "invalid_cursor"
    default_message = "The cursor cannot be read; pull again without a cursor."


class CursorExpiredError(LianhuError):
    code = "cursor_expired"
    default_message = "The cursor has expired; pull again without a cursor."


class BatchTooLargeError(LianhuError):
    code = "batch_too_large"
    default_message = "Too many operations in one batch."


class BodyTooLargeError(LianhuError):
    code = "body_too_large"
    default_message = "The request body is too large."


class HashMismatchError(LianhuError):
    code = "hash_mismatch"
    default_message = "The uploaded bytes do not have the SHA-256 named in the path; upload the file again."


class UploadOffsetError(ConflictError):
    """An upload chunk that does not start where the bytes held end; ``headers`` carry the offset."""

    default_message = "The upload does not continue where the bytes held end; resume at Upload-Offset."

    def __init__(self, offset: int, message: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message, {"offset": offset, **(details or {})})
        self.headers = {"Upload-Offset": str(offset)}


class RateLimitedError(LianhuError):
    code = "rate_limited"
    default_message = "Too many attempts; try again later."

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


# Op-level rejections: never raised out of a push, reported in the op's result.
class OpRejected(LianhuError):
    """An op that cannot be applied; the op is quarantined with this reason."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, details)
        self.code = code


class StaleDeleteError(OpRejected):
    def __init__(self, message: str = "The record was changed by others since your version.",
                 details: dict[str, Any] | None = None):
        super().__init__("stale_delete", message, details)


class IdTakenError(OpRejected):
    def __init__(self, message: str = "This id belongs to another record.",
                 details: dict[str, Any] | None = None):
        super().__init__("id_taken", message, details)


class InvalidTransitionError(OpRejected):
    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__("invalid_transition", message, details)
