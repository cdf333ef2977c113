"""Identity claims a profile could not store are refused at verification: 401, never a 500 later.

A validly signed token whose ``sub`` holds a NUL or is 5,000 characters long used to make every
request of that user a 500 on PostgreSQL (``/me`` included), since admission stores the profile.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from joserfc import jws

from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., AbstractAsyncContextManager[Host]]
ME = "/api/core/v1/me"
NOTES = "/api/plugins/notes/notes"

BAD_CLAIMS: dict[str, dict[str, Any]] = {
    "sub-nul": {"sub": "ali\x00ce"},
    "sub-5000": {"sub": "a" * 5000},
    "sub-256": {"sub": "a" * 256},
    "sub-empty": {"sub": ""},
    "sub-number": {"sub": 42},
    "sub-newline": {"sub": "alice\nbob"},
    "username-nul": {"preferred_username": "al\x00ice"},
    "username-long": {"preferred_username": "u" * 256},
    "email-long": {"email": "e" * 321},
    "email-control": {"email": "alice\x1b@example.com"},
}
#: Lone surrogates: JSON can spell them (``"\\ud800"``), UTF-8 cannot, so the minting library refuses them.
SURROGATE_CLAIMS = {"sub-surrogate": {"sub": "\ud800"}, "name-surrogate": {"name": "Al\udfffice"}}


def raw_token(running: Host, slug: str, claims: dict[str, Any]) -> str:
    """A dev-issuer token of ``slug``'s realm whose payload is JSON written with ASCII escapes."""
    issuer = running.platform.dev_issuer
    assert issuer is not None
    realm = f"tenant-{slug}"
    now = int(time.time())
    payload = {"iss": issuer.issuer(realm), "sub": "alice", "aud": issuer.audience, "iat": now, "exp": now + 300}
    key = issuer._keys_of(realm)[0]  # the realm's private key: the issuer's own mint() cannot encode these
    header = {"alg": "ES256", "kid": key.kid, "typ": "JWT"}
    return jws.serialize_compact(header, json.dumps(payload | claims).encode(), key, algorithms=["ES256"])


@pytest.fixture(
    params=[pytest.param({}, id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]
)
async def host(request: pytest.FixtureRequest, make_host: MakeHost) -> AsyncIterator[tuple[Host, str]]:
    overrides = {"database": {"url": request.getfixturevalue("postgres_url")}} if request.param == "postgres" else {}
    async with make_host(**overrides) as running:
        slug = f"cl-{uuid.uuid4().hex[:12]}"  # PostgreSQL is shared between tests: a fresh tenant each
        await running.platform.tenants.provision(slug)
        yield running, slug
        await running.platform.tenants.delete(slug)


async def test_unstorable_identity_claims_are_a_401_problem(host: tuple[Host, str]) -> None:
    running, slug = host
    tokens = {case: running.token(slug, user="alice", extra_claims=claims) for case, claims in BAD_CLAIMS.items()}
    tokens |= {case: raw_token(running, slug, claims) for case, claims in SURROGATE_CLAIMS.items()}
    for case, token in tokens.items():
        headers = running.auth(token)
        for path in (ME, NOTES):
            response = await running.client.get(path, headers=headers)
            assert response.status_code == 401, (case, path, response.status_code, response.text[:200])
            assert response.headers["content-type"] == "application/problem+json", case


async def test_claims_at_their_bounds_are_admitted(host: tuple[Host, str]) -> None:
    running, slug = host
    claims = {"sub": "s" * 255, "preferred_username": "José Ñ" + "u" * 249, "email": "e" * 320, "name": "Zoë d'Ar"}
    headers = running.auth(running.token(slug, extra_claims=claims))
    me = await running.client.get(ME, headers=headers)
    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["username"]) == ("s" * 255, claims["preferred_username"])
    assert (await running.client.get(NOTES, headers=headers)).status_code == 200
    hand_made = await running.client.get(ME, headers=running.auth(raw_token(running, slug, {"name": "Zo\u00eb"})))
    assert hand_made.status_code == 200, hand_made.text  # so the surrogate cases fail only for their claim
