"""Permission checks: Plexica's engine beside pycasbin on the same RBAC policy, in paired rounds.

The RBAC-with-domains policy: 1,000 users, 50 roles, 500 permissions (100 resources x 5
actions), 10 domains (Plexica workspaces). Each role holds 10 permissions in every domain; each
user holds 2 or 3 roles, each in one domain. Casbin gets it as ``p``/``g`` lines; Plexica as
custom roles and workspace-scoped grants in a real tenant schema. Before timing, 2,000 answers
are compared between the engines.

Every figure is paired, round by round, with pycasbin's ``FastEnforcer.enforce`` answering the
same (user, domain, object, action) questions (for ABAC: casbin's ``r.sub == r.obj.owner``):

* **first check of a request**: a new request's first ``authorize`` resolves its subject (tenant
  and user counters and the user's grant entry from L2, decode) before deciding; this is what
  every real request pays once. With the user's entry in L2 (memory, and Redis when
  ``TEST_REDIS_URL`` is set), and cold (the entry deleted: grants read from the database:
  SQLite, and PostgreSQL when ``TEST_DATABASE_URL`` is set);
* a repeated check within a warm request (the request's memoized decisions);
* ABAC, "owners read their documents", in a warm request.

casbin holds its whole policy in process memory and never reads a cache or a database, so the
first-check rows compare a request's full subject load with an in-memory lookup: the honest
price of a first check, not a like-for-like engine comparison (the repeated-check row is that).

Usage::

    set -a; . /tmp/plexica-services/env; set +a   # optional: Redis and PostgreSQL rows
    .venv/bin/python benchmarks/permissions_bench.py [--checks 300] [--rounds 7] [--quick] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import _paired
import attrs
import casbin  # type: ignore[import-untyped, import-not-found, unused-ignore]  # bench group only, untyped
import sqlalchemy as sa
from _paired import Figure, Measure, paired, per_op, sync_per_op

from plexica.cache import MemoryCache, RedisCache
from plexica.db.engine import Database, PostgresDatabase, SqliteDatabase
from plexica.db.migrations import TENANT_STREAM, upgrade
from plexica.db.migrations.runner import alembic_turn
from plexica.permissions import PermissionEngine, PermissionService
from plexica.permissions import models as tables
from plexica.permissions.cache import PermissionCache
from plexica.plugins import PluginManager, discover
from plexica.settings import DatabaseSettings
from plexica_sdk.protocols import Cache
from plexica_sdk.types import Policy, Principal, TenantContext

USERS, ROLES, RESOURCES, ACTIONS, DOMAINS = 1000, 50, 100, 5, 10
PERMISSIONS_PER_ROLE = 10

RBAC_MODEL = """
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""

ABAC_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == r.obj.owner && r.act == "read"
"""

OWNERS_READ = Policy(
    id="owners-read",
    effect="allow",
    target="bench:doc:read",
    condition={"attribute": "resource.owner", "operator": "equals", "value": {"ref": "subject.id"}},
)


@attrs.frozen
class Dataset:
    roles: dict[str, list[tuple[str, str]]]  # role -> [(obj, act)]
    grants: dict[str, list[tuple[str, str]]]  # user -> [(role, domain)]

    def allowed(self) -> set[tuple[str, str, str, str]]:
        return {
            (user, dom, obj, act)
            for user, held in self.grants.items()
            for role, dom in held
            for obj, act in self.roles[role]
        }


def dataset(rng: random.Random) -> Dataset:
    permissions = [(f"r{i}", f"a{j}") for i in range(RESOURCES) for j in range(ACTIONS)]
    roles = {f"role{i}": rng.sample(permissions, PERMISSIONS_PER_ROLE) for i in range(ROLES)}
    grants = {
        f"u{i}": [(rng.choice(list(roles)), f"w{rng.randrange(DOMAINS)}") for _ in range(rng.choice((2, 3)))]
        for i in range(USERS)
    }
    return Dataset(roles, grants)


def casbin_enforcers(data: Dataset, directory: Path) -> tuple[Any, Any]:
    model = directory / "rbac.conf"
    model.write_text(RBAC_MODEL)
    lines = [
        f"p, {role}, w{d}, {obj}, {act}"
        for role, perms in data.roles.items()
        for d in range(DOMAINS)
        for obj, act in perms
    ]
    lines += [f"g, {user}, {role}, {dom}" for user, held in data.grants.items() for role, dom in held]
    policy = directory / "rbac.csv"
    policy.write_text("\n".join(lines) + "\n")
    plain = casbin.Enforcer(str(model), str(policy))
    fast = casbin.FastEnforcer(str(model), str(policy), cache_key_order=[2, 1])  # obj, then dom
    return plain, fast


async def tenant_with(db: Database, data: Dataset) -> TenantContext:
    schema = f"tenant_bench_{uuid.uuid4().hex[:8]}"
    await db.create_schema(schema)
    async with alembic_turn(), db.tenant_connection(schema) as conn:
        await conn.run_sync(upgrade, TENANT_STREAM, schema)
    now = dt.datetime.now(dt.UTC)
    async with db.tenant_session(schema) as session:
        await session.execute(
            tables.roles.insert(),
            [
                {"name": r, "source": "custom", "description": "", "created_at": now, "updated_at": now}
                for r in data.roles
            ],
        )
        await session.execute(
            tables.role_permissions.insert(),
            [
                {"role": r, "pattern": f"bench:{obj}:{act}", "source": "custom"}
                for r, perms in data.roles.items()
                for obj, act in perms
            ],
        )
        await session.execute(
            tables.grants.insert(),
            [
                {
                    "id": str(uuid.uuid4()),
                    "role": role,
                    "subject_type": "user",
                    "subject_id": user,
                    "workspace_id": dom,
                    "created_at": now,
                }
                for user, held in data.grants.items()
                for role, dom in sorted(set(held))
            ],
        )
    return TenantContext(
        tenant_id=str(uuid.uuid4()), slug=schema.removeprefix("tenant_").replace("_", "-"), schema=schema
    )


def request(ctx: TenantContext, user: str, dom: str | None) -> TenantContext:
    return attrs.evolve(ctx, user=Principal(id=user, tenant_slug=ctx.slug), workspace_id=dom)


async def select_one(db: Database, ctx: TenantContext) -> None:
    """The database's floor for a cold check: one transaction of one trivial statement."""
    async with db.tenant_session(ctx.schema) as session:
        await session.execute(sa.text("SELECT 1"))


Question = tuple[str, str, str, str]  # user, domain, object, action
BENCH = "permissions"
FAST = "casbin FastEnforcer.enforce"


def first_check(engine: PermissionEngine, ctx: TenantContext, sample: list[Question], *, cold: bool) -> Measure:
    """A round of new requests' first checks; ``cold``: each user's L2 entry deleted beforehand (untimed)."""

    async def measure() -> float:
        pending = []
        for user, dom, obj, act in sample:
            if cold:
                await engine.cache.cache.delete(PermissionCache.entry_key(ctx.slug, user))
            else:
                await engine.authorize(request(ctx, user, dom), f"bench:{obj}:{act}")  # the entry is in L2
            pending.append((request(ctx, user, dom), f"bench:{obj}:{act}"))
        started = asyncio.get_running_loop().time()
        for fresh, key in pending:
            await engine.authorize(fresh, key)
        return (asyncio.get_running_loop().time() - started) / len(pending)

    return measure


def casbin_side(fast: Any, sample: list[Question], repeat: int = 20) -> Measure:
    """FastEnforcer answering the same questions (repeated: one pass is too short to time alone)."""
    calls = sample * repeat
    enforce = fast.enforce

    async def measure() -> float:
        return sync_per_op(lambda: [enforce(*q) for q in calls], 1) / len(calls)

    return measure


@contextlib.asynccontextmanager
async def backends(sqlite: Database, data: Dataset, sqlite_ctx: TenantContext) -> AsyncIterator[list[Any]]:
    """(label, database, L2 cache, tenant) for every combination the machine offers."""
    found: list[Any] = [("memory L2, SQLite", sqlite, MemoryCache(max_entries=100_000), sqlite_ctx)]
    async with contextlib.AsyncExitStack() as stack:
        redis: Cache | None = None
        if os.environ.get("TEST_REDIS_URL"):
            redis = await stack.enter_async_context(RedisCache(os.environ["TEST_REDIS_URL"]))
            found.append(("Redis L2, SQLite", sqlite, redis, sqlite_ctx))
        if os.environ.get("TEST_DATABASE_URL"):
            postgres = await stack.enter_async_context(
                PostgresDatabase(DatabaseSettings(url=os.environ["TEST_DATABASE_URL"]))
            )
            pg_ctx = await tenant_with(postgres, data)
            stack.push_async_callback(postgres.drop_schema, pg_ctx.schema)
            label = "Redis L2, PostgreSQL" if redis is not None else "memory L2, PostgreSQL"
            found.append((label, postgres, redis or MemoryCache(max_entries=100_000), pg_ctx))
        yield found
        if redis is not None:
            for _, _, _, ctx in found:
                await redis.delete_prefix(f"tenant:{ctx.slug}:")


async def run(args: argparse.Namespace) -> list[Figure]:
    rounds = _paired.rounds_for(args)
    checks = min(args.checks, 60) if args.quick else args.checks
    rng = random.Random(args.seed)
    data = dataset(rng)
    allowed = data.allowed()
    users, domains, held = list(data.grants), [f"w{d}" for d in range(DOMAINS)], sorted(allowed)
    queries: list[Question] = []
    for _ in range(20_000):  # half of the questions are about something the user holds
        if rng.random() < 0.5:
            queries.append(rng.choice(held))
        else:
            queries.append(
                (rng.choice(users), rng.choice(domains), f"r{rng.randrange(RESOURCES)}", f"a{rng.randrange(ACTIONS)}")
            )
    one_per_user = list({q[0]: q for q in queries}.values())
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        _, fast = casbin_enforcers(data, Path(tmp))
        async with SqliteDatabase(Path(tmp) / "db") as db:
            ctx = await tenant_with(db, data)
            plugins = PluginManager(discover(use_entry_points=False))
            async with backends(db, data, ctx) as found:
                for label, database, cache, tenant in found:
                    engine = PermissionEngine(db=database, cache=cache, plugins=plugins)
                    await engine.model(tenant)
                    for user, dom, obj, act in queries[:2000]:  # agreement first
                        ours = (await engine.authorize(request(tenant, user, dom), f"bench:{obj}:{act}")).allowed
                        assert ours == fast.enforce(user, dom, obj, act) == ((user, dom, obj, act) in allowed)
                    for cold in (False, True):
                        sample = rng.sample(one_per_user, min(checks, len(one_per_user)))
                        what = "cold: grants from the database" if cold else "grants in L2"
                        figures.append(
                            await paired(
                                BENCH,
                                f"first check of a request ({label}; {what})",
                                first_check(engine, tenant, sample, cold=cold),
                                FAST,
                                casbin_side(fast, sample),
                                rounds=rounds,
                            )
                        )
                    floor_name = f"  floor of a cold check: a SELECT 1 transaction ({label.split(', ')[1]})"
                    if not any(f.name == floor_name for f in figures):
                        floor = lambda d=database, t=tenant: per_op(lambda: select_one(d, t), checks)  # noqa: E731
                        figures.append(await _paired.single(BENCH, floor_name, floor, rounds=rounds))

            engine = PermissionEngine(db=db, cache=MemoryCache(max_entries=100_000), plugins=plugins, scope_ttl=3600.0)
            await PermissionService(db, engine).create_policy(ctx, OWNERS_READ)
            sample = rng.sample(queries, checks * 10)
            warm = {(u, d): request(ctx, u, d) for u, d, _, _ in sample}
            for user, dom, obj, act in sample:
                await engine.authorize(warm[user, dom], f"bench:{obj}:{act}")
            calls = [(warm[u, d], f"bench:{o}:{a}") for u, d, o, a in sample]

            async def repeated() -> float:
                return await _timed_all(engine, calls)

            figures.append(
                await paired(
                    BENCH,
                    "repeated check in a warm request",
                    repeated,
                    FAST,
                    casbin_side(fast, sample, 1),
                    rounds=rounds,
                )
            )

            abac_model = Path(tmp) / "abac.conf"
            abac_model.write_text(ABAC_MODEL)
            abac = casbin.Enforcer(str(abac_model))

            @attrs.frozen
            class Doc:
                owner: str

            docs = [(rng.choice(users), rng.choice(users)) for _ in range(checks * 10)]
            abac_requests = {u: request(ctx, u, None) for u in {u for u, _ in docs}}
            for user, owner in docs[:2000]:
                ours = (await engine.authorize(abac_requests[user], "bench:doc:read", {"owner": owner})).allowed
                assert ours == abac.enforce(user, Doc(owner), "read") == (user == owner)
            abac_calls = [(abac_requests[u], "bench:doc:read", {"owner": o}) for u, o in docs]
            casbin_abac = [(u, Doc(o), "read") for u, o in docs]

            async def ours_abac() -> float:
                return await _timed_all(engine, abac_calls)

            async def theirs_abac() -> float:
                return sync_per_op(lambda: [abac.enforce(*q) for q in casbin_abac], 1) / len(casbin_abac)

            figures.append(
                await paired(
                    BENCH,
                    "ABAC owner check, warm request",
                    ours_abac,
                    "casbin ABAC Enforcer",
                    theirs_abac,
                    rounds=rounds,
                )
            )
    return figures


async def _timed_all(engine: PermissionEngine, calls: list[Any]) -> float:
    started = asyncio.get_running_loop().time()
    for call in calls:
        await engine.authorize(*call)
    return (asyncio.get_running_loop().time() - started) / len(calls)


def main(argv: list[str]) -> int:
    parser = _paired.parser(__doc__)
    parser.add_argument("--checks", type=int, default=300, help="first checks per round (--quick: at most 60)")
    parser.add_argument("--seed", type=int, default=1)
    return _paired.finish(asyncio.run(run(parser.parse_args(argv))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
