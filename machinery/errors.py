"""API errors as Kubernetes clients see them: one exception wrapping a ``metav1.Status``.

Every layer that answers a client (the API server's handlers) or reads an answer (our REST client)
speaks in :class:`StatusError`. Constructors mirror apimachinery's ``errors.New*`` helpers so the
messages are the ones kubectl prints, and callers branch on predicates (``is_not_found(err)``),
never on message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class StatusError(Exception):
    """An error that is, on the wire, a ``metav1.Status`` with ``status: Failure``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after_seconds = retry_after_seconds

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @classmethod
    def from_status(cls, body: dict[str, Any], code: int | None = None) -> StatusError:
        """Rebuild an error from a Status body received from a server."""
        return cls(
            code=int(body.get("code") or code or 500),
            reason=body.get("reason") or "",
            message=body.get("message") or "",
            details=body.get("details"),
        )

    def __repr__(self) -> str:
        return f"StatusError({self.code}, {self.reason!r}, {self.message!r})"


# --- field errors (the causes of a 422 Invalid) -------------------------------------------------

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
NOT_FOUND_FIELD = "FieldValueNotFound"
TYPE_INVALID = "FieldValueTypeInvalid"

_FIELD_ERROR_TEXT = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    DUPLICATE: "Duplicate value",
    NOT_SUPPORTED: "Unsupported value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    NOT_FOUND_FIELD: "Not found",
    TYPE_INVALID: "Invalid value",
}

_NO_VALUE = object()


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, rendered like apimachinery's ``field.Error``."""

    type: str
    field: str
    detail: str = ""
    value: Any = field(default=_NO_VALUE, compare=False)

    def message(self) -> str:
        text = _FIELD_ERROR_TEXT.get(self.type, self.type)
        if self.value is not _NO_VALUE and self.type in (INVALID, NOT_SUPPORTED, DUPLICATE, TYPE_INVALID):
            text = f"{text}: {render_value(self.value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.message()}" if self.field else self.message()

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message(), "field": self.field}


def render_value(value: Any) -> str:
    """A field value as field errors print it: strings quoted, booleans and null in JSON."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(REQUIRED, path, detail)


def invalid_value(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError(INVALID, path, detail, value)


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in supported) if supported else ""
    return FieldError(NOT_SUPPORTED, path, detail, value)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(DUPLICATE, path, "", value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(FORBIDDEN, path, detail)


def too_long(path: str, max_length: int) -> FieldError:
    return FieldError(TOO_LONG, path, f"may not be more than {max_length} bytes")


# --- constructors -------------------------------------------------------------------------------


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        {"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        {"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, name: str, reason_text: str, group: str = "") -> StatusError:
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {reason_text}',
        {"name": name, "group": group, "kind": resource},
    )


OBJECT_MODIFIED = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, name: str, errors: list[FieldError], group: str = "") -> StatusError:
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    qualified_kind = f"{kind}.{group}" if group else kind
    return StatusError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {text}',
        {"name": name, "group": group, "kind": kind, "causes": [e.cause() for e in errors]},
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def gone(message: str) -> StatusError:
    return StatusError(410, "Gone", message)


def expired(message: str) -> StatusError:
    """410 with reason Expired: the resourceVersion asked for has been compacted away."""
    return StatusError(410, "Expired", message)


def resource_expired(requested: int | str, oldest: int | str | None = None) -> StatusError:
    text = f"too old resource version: {requested}"
    if oldest is not None:
        text += f" ({oldest})"
    return expired(text)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def request_entity_too_large(message: str) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def too_many_requests(message: str, retry_after_seconds: int = 1) -> StatusError:
    return StatusError(
        429,
        "TooManyRequests",
        message,
        {"retryAfterSeconds": retry_after_seconds},
        retry_after_seconds=retry_after_seconds,
    )


def internal_error(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def server_timeout(message: str) -> StatusError:
    return StatusError(504, "Timeout", message)


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def forbidden_error(resource: str, name: str, message: str, group: str = "") -> StatusError:
    target = f'{_qualified(resource, group)} "{name}"' if name else _qualified(resource, group)
    return StatusError(
        403,
        "Forbidden",
        f"{target} is forbidden: {message}",
        {"name": name, "group": group, "kind": resource},
    )


# --- predicates ---------------------------------------------------------------------------------


def reason_of(err: BaseException) -> str:
    return err.reason if isinstance(err, StatusError) else ""


def code_of(err: BaseException) -> int:
    return err.code if isinstance(err, StatusError) else 0


def is_not_found(err: BaseException) -> bool:
    return reason_of(err) == "NotFound"


def is_already_exists(err: BaseException) -> bool:
    return reason_of(err) == "AlreadyExists"


def is_conflict(err: BaseException) -> bool:
    return reason_of(err) == "Conflict"


def is_invalid(err: BaseException) -> bool:
    return reason_of(err) == "Invalid"


def is_bad_request(err: BaseException) -> bool:
    return reason_of(err) == "BadRequest"


def is_gone(err: BaseException) -> bool:
    """410, whether the server said Gone or Expired: the client must relist."""
    return code_of(err) == 410


def is_too_many_requests(err: BaseException) -> bool:
    return code_of(err) == 429


def is_forbidden(err: BaseException) -> bool:
    return reason_of(err) == "Forbidden"
