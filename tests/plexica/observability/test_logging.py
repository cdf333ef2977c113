"""JSON logs: the seed's fields, the context in handlers, and redaction through every logging path."""

from __future__ import annotations

import base64
import json
import logging
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from plexica.observability.logging import (
    REDACTED,
    JsonFormatter,
    RequestLog,
    capture_context,
    plugin_scope,
    request_log,
    scrub,
)
from plexica_sdk.context import use
from plexica_sdk.types import Principal, TenantContext, TenantInfo

log = logging.getLogger("plexica.test.logging")


class _Records(logging.Handler):
    """Keeps records to format later, as a queue handler would: outside the context that logged them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[_Records]:
    capture_context()
    handler = _Records()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def _formatted(handler: _Records) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in handler.records]
    assert all("\n" not in line for line in lines)  # one object per line
    handler.records.clear()
    return [json.loads(line) for line in lines]


def _ctx(user: str | None = "u-1") -> TenantContext:
    return TenantContext(
        tenant_id="t-1",
        slug="acme",
        schema="tenant_acme",
        user=Principal(id=user) if user else None,
        trace_id="trace-evt-1",
    )


class _Facts:
    def __init__(self, trace_id: str, tenant: TenantInfo | None, principal: Principal | None) -> None:
        self.trace_id, self.tenant, self.principal = trace_id, tenant, principal


def test_a_line_has_the_seed_fields_and_the_request_ids_even_when_formatted_later(records: _Records) -> None:
    tenant = TenantInfo(id="t-9", slug="globex", name="Globex", status="active", schema="tenant_globex")
    token = request_log.set(RequestLog("req-1", _Facts("trace-1", tenant, Principal(id="bob"))))
    try:
        log.warning("refused")
    finally:
        request_log.reset(token)
    [line] = _formatted(records)  # formatted now, outside the request
    assert {k: line[k] for k in ("level", "message", "requestId", "traceId", "tenantId", "tenantSlug", "userId")} == {
        "level": "warning",
        "message": "refused",
        "requestId": "req-1",
        "traceId": "trace-1",
        "tenantId": "t-9",
        "tenantSlug": "globex",
        "userId": "bob",
    }
    assert line["timestamp"].endswith("+00:00")
    assert "plugin" not in line


def test_handlers_and_hooks_log_with_their_tenant_and_plugin(records: _Records) -> None:
    with use(_ctx(user=None)), plugin_scope("audit"):
        log.info("handled")
    log.info("outside")
    inside, outside = _formatted(records)
    assert (inside["tenantId"], inside["tenantSlug"], inside["traceId"], inside["plugin"]) == (
        "t-1",
        "acme",
        "trace-evt-1",
        "audit",
    )
    assert "userId" not in inside
    assert not {"tenantId", "plugin", "traceId", "requestId"} & outside.keys()


def test_an_extra_cannot_spoof_the_context(records: _Records) -> None:
    with use(_ctx()):
        log.info("x", extra={"tenantId": "someone-else", "plain": 3})
    [line] = _formatted(records)
    assert (line["tenantId"], line["plain"]) == ("t-1", 3)


# --------------------------------------------------------------- redaction

_B64URL = string.ascii_letters + string.digits + "-_"
_SAFE = string.ascii_letters + string.digits + "!#$%^*(+-_.~/"  # no quotes, blanks or list separators


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


jwts = st.builds(
    lambda header, claims, signature: f"{_b64(header)}.{_b64(claims)}.{signature}",
    st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), st.text(_B64URL, min_size=1, max_size=8), min_size=1).map(
        lambda d: json.dumps(d).encode()
    ),
    st.binary(min_size=8, max_size=60),
    st.text(_B64URL, min_size=16, max_size=60),
)
bearer_tokens = st.text(_B64URL + ".~+/", min_size=16, max_size=60)
passwords = st.text(_SAFE, min_size=10, max_size=40)
any_secret = st.text(st.characters(exclude_categories=["Cs"]), min_size=10, max_size=40)
emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(string.ascii_lowercase + string.digits + "._+-", min_size=3, max_size=20).filter(
        lambda s: s[0].isalnum() and s[-1].isalnum()
    ),
    st.text(string.ascii_lowercase + string.digits, min_size=3, max_size=15),
    st.sampled_from(["com", "org", "io", "example"]),
)


def _raise(message: str) -> None:
    raise ValueError(message)


def _log_exception(message: str) -> None:
    try:
        try:
            _raise(message)
        except ValueError as inner:
            raise RuntimeError(f"wrapped: {inner}") from inner
    except RuntimeError:
        log.exception("request failed")


#: Every way a secret reaches a log call: (name, strategy, how the secret is logged).
PATHS: list[tuple[str, st.SearchStrategy[str], Callable[[str], None]]] = [
    ("extra-password", any_secret, lambda s: log.info("login", extra={"password": s})),
    ("extra-nested-api-key", any_secret, lambda s: log.info("cfg", extra={"cfg": [{"svc": {"API-Key": s}}]})),
    ("extra-header-map", bearer_tokens, lambda s: log.info("h", extra={"headers": {"Authorization": f"Bearer {s}"}})),
    ("extra-header-pairs", any_secret, lambda s: log.info("h", extra={"headers": [("cookie", f"sid={s}")]})),
    ("extra-bytes-header", any_secret, lambda s: log.info("h", extra={"raw": [(b"set-cookie", s.encode())]})),
    ("extra-email", emails, lambda s: log.info("u", extra={"user": {"email": s}})),
    ("extra-value-jwt", jwts, lambda s: log.info("n", extra={"note": f"got {s} back"})),
    ("extra-value-email", emails, lambda s: log.info("n", extra={"who": [f"mail {s}"]})),
    ("message-password", passwords, lambda s: log.info(f"login failed password={s} for x")),
    ("message-quoted-secret", passwords, lambda s: log.info(f"config {{'client_secret': '{s}'}}")),
    ("message-jwt", jwts, lambda s: log.info(f"token {s}")),
    ("message-email", emails, lambda s: log.info(f"signup {s} ok")),
    ("message-authorization", bearer_tokens, lambda s: log.info(f"Authorization: Bearer {s}")),
    ("message-cookie", passwords, lambda s: log.info(f"Cookie: theme=dark; sid={s}")),
    ("message-url-password", passwords, lambda s: log.info(f"connect postgresql://app:{s}@db:5432/x")),
    ("arg-bearer", bearer_tokens, lambda s: log.info("auth %s", f"Bearer {s}")),
    ("arg-jwt", jwts, lambda s: log.info("decoded %r", s)),
    ("arg-dict-secret", any_secret, lambda s: log.info("payload %s", {"secret": s, "n": 1})),
    ("arg-mapping", emails, lambda s: log.info("user %(who)s", {"who": s})),
    ("arg-api-key-pair", passwords, lambda s: log.info("query %s", f"api_key={s}&page=2")),
    ("exception-password", passwords, lambda s: _log_exception(f"bad credentials password={s}")),
    ("exception-email", emails, lambda s: _log_exception(f"no account for {s}")),
    ("exception-jwt", jwts, lambda s: _log_exception(f"expired {s}")),
    ("exception-token", bearer_tokens, lambda s: _log_exception(f"refused header Bearer {s}")),
]


@pytest.mark.parametrize(("strategy", "emit"), [(p[1], p[2]) for p in PATHS], ids=[p[0] for p in PATHS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_secrets_never_reach_a_line(
    records: _Records, strategy: st.SearchStrategy[str], emit: Callable[[str], None], data: st.DataObject
) -> None:
    secret = data.draw(strategy, label="secret")
    with use(_ctx()):
        emit("PLACEHOLDER-VALUE-0")
    baseline = json.dumps(_formatted(records))
    assume(secret not in baseline)  # a secret that happens to be text the line always holds proves nothing
    with use(_ctx()):
        emit(secret)
    [line] = _formatted(records)
    text = json.dumps(line, ensure_ascii=False)
    raw = "\n".join(str(value) for value in line.values())
    assert secret not in text and secret not in raw, text
    assert REDACTED in text


def test_scrub_keeps_ordinary_text() -> None:
    text = "GET /api/plugins/notes/notes 200 in 3.2 ms for tenant acme"
    assert scrub(text) == text
