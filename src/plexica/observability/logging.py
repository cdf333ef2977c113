"""JSON logs, one object per line, enriched with the request's ids and never holding secrets.

Fields: ``timestamp``, ``level``, ``logger``, ``message``, then the context — ``requestId``,
``traceId``, ``tenantId``, ``tenantSlug``, ``userId``, ``plugin`` — then the caller's ``extra``
keys, and ``error``/``errorMessage``/``stack`` for an exception. See ``docs/tracing.md#logs``.

**Request-scoped by construction.** The context is read from context variables (the tenant
context, :data:`request_log` set by the outermost HTTP stage for its own request, and
:data:`plugin_name` set around each hook and handler call) and captured onto the record *when it
is created*, in the task that logs (:func:`configure_logging` installs the record factory). A
handler that formats later or in another thread (a ``QueueHandler``) prints the ids of the request
that logged, never those of whatever runs when the line is written.

**Redaction.** Keys that name a credential or an e-mail (``password``, ``token``, ``secret``,
``api_key``, ``authorization``, ``cookie``, ``email``, ...) are replaced at any depth of ``extra``;
every string — the message after ``%``-formatting, ``extra`` values, an exception's text and its
traceback — is scrubbed of JWT-shaped tokens, ``Bearer``/``Basic`` credentials, ``key=value``
secrets, URL passwords and e-mail addresses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Protocol

import attrs

from plexica_sdk.context import tenant_context

if TYPE_CHECKING:
    from plexica_sdk.types import Principal, TenantInfo

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RequestFacts",
    "RequestLog",
    "capture_context",
    "configure_logging",
    "context_fields",
    "context_ids",
    "plugin_name",
    "plugin_scope",
    "redact",
    "request_log",
    "scrub",
]

REDACTED: Final = "[redacted]"
_CAPTURED: Final = "_plexica_context"
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
_MAX_DEPTH: Final = 8

#: Substrings of ``extra`` keys (lowercased, ``-`` as ``_``) whose values never reach a line.
_SECRET_KEY_PARTS: Final = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "auth_header",
    "cookie",
    "credential",
    "private_key",
    "session_id",
    "sessionid",
    "email",
    "e_mail",
    "signature",
)
_KEY_WORDS = (
    r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|credential"
    r"|private[_-]?key|session[_-]?id|signature)[\w.-]*"
)
_SCRUBBERS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Cookie headers: the whole value (``a=1; b=2``) is the secret.
    (re.compile(r"(?im)(\b(?:set-)?cookie[\"']?\s*[:=]\s*)(?:\"[^\"]*\"|'[^']*'|[^\r\n]*)"), r"\1" + REDACTED),
    # ``key=value`` / ``key: value`` / ``'key': 'value'`` where the key names a secret.
    (
        re.compile(
            r"(?i)([\"']?\b" + _KEY_WORDS + r"[\"']?\s*[:=]\s*)"
            r"(?:\"[^\"]*\"|'[^']*'|(?:bearer|basic|digest|token)\s+[^\s,;\"']+|[^\s,;&}\])\"']+)"
        ),
        r"\1" + REDACTED,
    ),
    # Credentials after an auth scheme, wherever they appear.
    (re.compile(r"(?i)\b(bearer|basic|digest)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 " + REDACTED),
    # JWT-shaped tokens: three base64url segments, the header starting ``{"`` (``eyJ``).
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # Passwords in URLs: ``scheme://user:password@host``.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^\s@]+@"), r"\1" + REDACTED + "@"),
    # E-mail addresses.
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), REDACTED),
)


def scrub(text: str) -> str:
    """``text`` with tokens, credentials, secrets and e-mail addresses replaced by ``[redacted]``."""
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


def _secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("-", "_")
    return any(part in normalized for part in _SECRET_KEY_PARTS)


def redact(value: Any, _depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` with secret-named keys replaced and every string scrubbed.

    Mappings are redacted by key at any depth, and so are ``(name, value)`` pairs (header lists).
    Other objects become their scrubbed ``str``.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub(value)
    if _depth >= _MAX_DEPTH:
        return "[truncated]"
    if isinstance(value, bytes | bytearray):
        return scrub(bytes(value).decode("utf-8", errors="replace"))
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _secret_key(k) else redact(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        if isinstance(value, tuple) and len(value) == 2 and _secret_key(_text_key(value[0])):
            return [redact(value[0], _depth + 1), REDACTED]
        return [redact(item, _depth + 1) for item in value]
    return scrub(str(value))


def _text_key(key: object) -> object:
    return key.decode("latin-1") if isinstance(key, bytes) else key


# ----------------------------------------------------------------- the context


class RequestFacts(Protocol):
    """What the HTTP stages learn about a request (``plexica.http.scope.RequestState``)."""

    @property
    def trace_id(self) -> str: ...

    @property
    def tenant(self) -> TenantInfo | None: ...

    @property
    def principal(self) -> Principal | None: ...


@attrs.frozen
class RequestLog:
    """The request a piece of work belongs to: its id, and the facts the stages fill in as they run."""

    request_id: str
    facts: RequestFacts


#: Set by the outermost HTTP stage for its request only (a fresh value per request task).
request_log: ContextVar[RequestLog | None] = ContextVar("plexica_request_log", default=None)
#: The plugin whose hook or handler is running.
plugin_name: ContextVar[str | None] = ContextVar("plexica_log_plugin", default=None)


@contextlib.contextmanager
def plugin_scope(plugin: str) -> Iterator[None]:
    """Attribute the logs (and spans) of a block to ``plugin``."""
    token = plugin_name.set(plugin)
    try:
        yield
    finally:
        plugin_name.reset(token)


def context_ids() -> tuple[str | None, str | None, str | None]:
    """``(tenant id, tenant slug, user id)`` of the current work, from the tenant context or the request."""
    ctx = tenant_context.get()
    if ctx is not None:
        return ctx.tenant_id, ctx.slug, ctx.user.id if ctx.user is not None else None
    request = request_log.get()
    if request is None:
        return None, None, None
    tenant, principal = request.facts.tenant, request.facts.principal
    return (
        tenant.id if tenant is not None else None,
        tenant.slug if tenant is not None else None,
        principal.id if principal is not None else None,
    )


def context_fields() -> dict[str, str]:
    """The log fields of the current work: ``requestId``, ``traceId``, tenant, user and plugin."""
    fields: dict[str, str] = {}
    request = request_log.get()
    if request is not None:
        fields["requestId"] = request.request_id
        fields["traceId"] = request.facts.trace_id
    ctx = tenant_context.get()
    if ctx is not None and ctx.trace_id and "traceId" not in fields:
        fields["traceId"] = ctx.trace_id
    tenant_id, slug, user_id = context_ids()
    if tenant_id is not None:
        fields["tenantId"] = tenant_id
    if slug is not None:
        fields["tenantSlug"] = slug
    if user_id is not None:
        fields["userId"] = user_id
    plugin = plugin_name.get()
    if plugin is not None:
        fields["plugin"] = plugin
    return fields


def _capturing_factory(base: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = base(*args, **kwargs)
        setattr(record, _CAPTURED, context_fields())
        return record

    factory.plexica_captures = True  # type: ignore[attr-defined]
    return factory


def capture_context() -> None:
    """Capture the context onto every record when it is created (idempotent; ``create_app`` calls it).

    The formatter then prints the ids of the work that logged, even if it formats the record
    later or in another thread.
    """
    current = logging.getLogRecordFactory()
    if not getattr(current, "plexica_captures", False):
        logging.setLogRecordFactory(_capturing_factory(current))


# ------------------------------------------------------------------ formatting


def _message(record: logging.LogRecord) -> str:
    args = record.args
    if not args:
        return scrub(str(record.msg))
    try:
        safe = redact(args) if isinstance(args, Mapping) else tuple(_arg(a) for a in args)
        text = str(record.msg) % safe
    except (TypeError, ValueError, KeyError):
        text = record.getMessage()
    return scrub(text)


def _arg(value: Any) -> Any:
    # Keep numbers as numbers so ``%d`` still works; everything else is redacted text or structure.
    if isinstance(value, bool | int | float) or value is None:
        return value
    redacted = redact(value)
    return redacted if isinstance(redacted, str) else json.dumps(redacted, default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object per line: seed fields, the captured context, redacted extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        captured = getattr(record, _CAPTURED, None)
        context = captured if isinstance(captured, dict) else context_fields()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in context and key not in entry:
                entry[key] = REDACTED if _secret_key(key) else redact(value)
        entry.update(context)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            entry["error"] = exc_type.__name__
            entry["errorMessage"] = scrub(str(exc))
            entry["stack"] = scrub("".join(traceback.format_exception(exc_type, exc, tb)))
        elif record.exc_text:
            entry["stack"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stackInfo"] = scrub(record.stack_info)
        return json.dumps(entry, default=lambda value: scrub(str(value)), separators=(",", ":"), ensure_ascii=False)


def configure_logging(level: str = "INFO") -> None:
    """Send every ``plexica`` log to stderr as JSON (called by ``plexica serve``, not on import).

    Also installs the record factory that captures the context when a record is created.
    """
    capture_context()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("plexica")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
