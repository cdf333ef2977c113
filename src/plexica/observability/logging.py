"""JSON logs, one object per line, enriched with the tenant context and never holding secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from plexica_sdk import context

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}
#: Extra fields that must never reach a log line, whatever a caller passes.
_REDACTED = {"authorization", "token", "password", "secret", "access_token", "refresh_token", "email"}


class JsonFormatter(logging.Formatter):
    """Formats records as JSON with ``timestamp, level, logger, message``, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = context.get()
        if ctx is not None:
            entry["tenant"] = ctx.slug
            if ctx.user is not None:
                entry["user"] = ctx.user.id
            if ctx.trace_id:
                entry["trace_id"] = ctx.trace_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = "[redacted]" if key.lower() in _REDACTED else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str = "INFO") -> None:
    """Send every ``plexica`` log to stderr as JSON (called by ``plexica serve``, not on import)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("plexica")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
