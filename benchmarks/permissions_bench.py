"""Permission checks: Plexica's engine against pycasbin on the same policies, in one run.

The RBAC-with-domains policy: 1,000 users, 50 roles, 500 permissions (100 resources x 5
actions), 10 domains (Plexica workspaces). Each role holds 10 permissions in every domain; each
user holds 2 or 3 roles, each in one domain. Casbin gets it as ``p``/``g`` lines; Plexica as
custom roles and workspace-scoped grants in a real tenant schema (SQLite), behind its caches.
Before timing, every query's answer is compared between the engines.

Measured, per check:

* a precomputed ``(user, domain, key) in set`` lookup (the floor);
* Plexica, cached: a repeated check in a warm request (L1), through ``await engine.authorize``,
  both as a request repeats them and interleaved over all 10,000 (user, domain) requests;
* Plexica, a new permission in a warm request (subject resolved, decision not yet memoized);
* Plexica, first check of a new request with the user's grants in L2 (counters + entry + decode);
* Plexica, first check of a user, cold (L2 miss: the grants are read from the database);
* the same two first checks with Redis as L2, when ``TEST_REDIS_URL`` is set, and the cold one
  on PostgreSQL, when ``TEST_DATABASE_URL`` is set; each cold row is followed by the database's
  floor, a transaction of one ``SELECT 1``, since a cold check cannot cost less;
* pycasbin ``FastEnforcer`` (``cache_key_order`` on domain and object) and plain ``Enforcer``;
* ABAC, "owners read their documents": Plexica's policy (in a warm request) against casbin's
  ``r.sub == r.obj.owner`` matcher.

Targets (permission engine issue): cached <= 2 us at p50 and >= 25x faster than FastEnforcer;
first check of a user < 500 us.

pycasbin is a benchmark-only dependency (``pip install pycasbin``).

Usage::

    set -a; . /tmp/plexica-services/env; set +a   # optional: Redis as L2 too
    .venv/bin/python benchmarks/permissions_bench.py [--checks 20000] [--cold 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import random
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import casbin  # type: ignore[import-untyped, import-not-found, unused-ignore]  # bench group only, untyped
import sqlalchemy as sa

from plexica.cache import MemoryCache, RedisCache
from plexica.db.engine import Database, PostgresDatabase, SqliteDatabase
from plexica.db.migrations import TENANT_STREAM, upgrade
from plexica.db.migrations.runner import alembic_turn
from plexica.permissions import PermissionEngine, PermissionService
from plexica.permissions import models as tables
from plexica.permissions.cache import PermissionCache
from plexica.plugins import PluginManager, discover
from plexica.settings import DatabaseSettings
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


@attrs.frozen
class Result:
    name: str
    samples: list[float]  # microseconds

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.samples, n=100)[98] if len(self.samples) >= 100 else max(self.samples)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)


def timed(name: str, calls: Sequence[Callable[[], Any]]) -> Result:
    gc.collect()  # every scenario starts from a clean heap; collections during timing still count
    samples = []
    clock = time.perf_counter_ns
    for call in calls:
        start = clock()
        call()
        samples.append((clock() - start) / 1000)
    return Result(name, samples)


async def atimed(name: str, calls: Sequence[Callable[[], Awaitable[Any]]]) -> Result:
    gc.collect()
    samples = []
    clock = time.perf_counter_ns
    for call in calls:
        start = clock()
        await call()
        samples.append((clock() - start) / 1000)
    return Result(name, samples)


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


async def first_checks(
    name: str, engine: PermissionEngine, ctx: TenantContext, queries: list[tuple[str, str, str]], *, cold: bool
) -> Result:
    """The first check of a new request per query; ``cold``: the user's L2 entry is gone too."""
    calls: list[Callable[[], Awaitable[Any]]] = []
    for user, dom, key in queries:
        fresh = request(ctx, user, dom)
        if cold:
            await engine.cache.cache.delete(PermissionCache.entry_key(ctx.slug, user))
        else:
            await engine.authorize(request(ctx, user, dom), key)  # puts the user's grants in L2
        calls.append(partial(engine.authorize, fresh, key))
    return await atimed(name, calls)


async def run(args: argparse.Namespace) -> list[Result]:
    rng = random.Random(args.seed)
    data = dataset(rng)
    allowed = data.allowed()
    users, domains = list(data.grants), [f"w{d}" for d in range(DOMAINS)]
    held = sorted(allowed)
    queries = []
    for _ in range(args.checks):  # half of the questions are about something the user holds
        if rng.random() < 0.5:
            queries.append(rng.choice(held))
        else:
            obj, act = f"r{rng.randrange(RESOURCES)}", f"a{rng.randrange(ACTIONS)}"
            queries.append((rng.choice(users), rng.choice(domains), obj, act))
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        plain, fast = casbin_enforcers(data, Path(tmp))
        async with SqliteDatabase(Path(tmp) / "db") as db:
            ctx = await tenant_with(db, data)
            plugins = PluginManager(discover(use_entry_points=False))
            # Each benchmark "request" lives for the whole run; real ones last well under the
            # default scope_ttl (1 s), after which a request re-validates its subject.
            engine = PermissionEngine(db=db, cache=MemoryCache(max_entries=100_000), plugins=plugins, scope_ttl=3600.0)
            await PermissionService(db, engine).create_policy(ctx, OWNERS_READ)

            # Agreement first: every timed question gets the same answer from both engines.
            requests = {(u, d): request(ctx, u, d) for u in users for d in domains}
            for user, dom, obj, act in queries[:2000]:
                ours = (await engine.authorize(requests[user, dom], f"bench:{obj}:{act}")).allowed
                assert ours == fast.enforce(user, dom, obj, act) == ((user, dom, obj, act) in allowed)

            results.append(timed("precomputed set lookup", [partial(allowed.__contains__, q) for q in queries]))
            for user, dom, obj, act in queries:  # warm: every request's subject resolved, answers memoized
                await engine.authorize(requests[user, dom], f"bench:{obj}:{act}")
            in_requests = []  # a request checks a few permissions, some twice: 10 checks per request
            for user, dom, obj, act in queries[: len(queries) // 10]:
                r = request(ctx, user, dom)
                await engine.subject(r)
                keys = [f"bench:{obj}:{act}"] + [
                    f"bench:r{rng.randrange(RESOURCES)}:a{rng.randrange(ACTIONS)}" for _ in range(4)
                ]
                for key in keys:
                    await engine.authorize(r, key)
                in_requests += [partial(engine.authorize, r, k) for k in keys * 2]
            results.append(await atimed("plexica cached (repeated in a request)", in_requests))
            results.append(
                await atimed(
                    "plexica cached (10,000 warm requests, mixed)",
                    [partial(engine.authorize, requests[u, d], f"bench:{o}:{a}") for u, d, o, a in queries],
                )
            )
            fresh = []
            for user, dom, obj, act in queries[: args.cold * 4]:
                r = request(ctx, user, dom)
                await engine.subject(r)
                fresh.append(partial(engine.authorize, r, f"bench:{obj}:{act}"))
            results.append(await atimed("plexica new permission, warm request", fresh))
            firsts = {u: (u, d, f"bench:{o}:{a}") for u, d, o, a in queries}  # one query per user
            sample = rng.sample(sorted(firsts.values()), min(args.cold, len(firsts)))
            results.append(await first_checks("plexica first check, L2 hit (memory)", engine, ctx, sample, cold=False))
            results.append(await first_checks("plexica first check, cold (SQLite)", engine, ctx, sample, cold=True))
            results.append(
                await atimed("  floor: SELECT 1 transaction (SQLite)", [partial(select_one, db, ctx)] * args.cold)
            )
            if os.environ.get("TEST_REDIS_URL"):
                async with RedisCache(os.environ["TEST_REDIS_URL"]) as redis:
                    remote = PermissionEngine(db=db, cache=redis, plugins=plugins)
                    await remote.model(ctx)
                    results.append(
                        await first_checks("plexica first check, L2 hit (Redis)", remote, ctx, sample, cold=False)
                    )
                    results.append(
                        await first_checks("plexica first check, cold (Redis + SQLite)", remote, ctx, sample, cold=True)
                    )
                    await redis.delete_prefix(f"tenant:{ctx.slug}:")
            if os.environ.get("TEST_DATABASE_URL"):
                settings = DatabaseSettings(url=os.environ["TEST_DATABASE_URL"])
                async with PostgresDatabase(settings) as postgres:
                    pg_ctx = await tenant_with(postgres, data)
                    try:
                        on_pg = PermissionEngine(db=postgres, cache=MemoryCache(max_entries=100_000), plugins=plugins)
                        await on_pg.model(pg_ctx)
                        pg_sample = [(u, d, k) for u, d, k in sample]
                        await first_checks("warm-up", on_pg, pg_ctx, pg_sample[:20], cold=True)
                        results.append(
                            await first_checks(
                                "plexica first check, cold (PostgreSQL)", on_pg, pg_ctx, pg_sample, cold=True
                            )
                        )
                        floor = [partial(select_one, postgres, pg_ctx)] * args.cold
                        results.append(await atimed("  floor: SELECT 1 transaction (PostgreSQL)", floor))
                    finally:
                        await postgres.drop_schema(pg_ctx.schema)

            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            probe = PermissionEngine(db=db, cache=MemoryCache(), plugins=plugins)
            await probe.model(ctx)
            grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
            tracemalloc.stop()
            print(f"compiled model of the tenant (50 roles, 500 keys, 1 policy): ~{grown / 1024:.0f} KiB")

            fast_calls = [partial(fast.enforce, *q) for q in queries]
            results.append(timed("casbin FastEnforcer.enforce", fast_calls))
            results.append(
                timed("casbin Enforcer.enforce", [partial(plain.enforce, *q) for q in queries[: args.plain]])
            )

            # ABAC: owners read their documents.
            abac_model = Path(tmp) / "abac.conf"
            abac_model.write_text(ABAC_MODEL)
            abac = casbin.Enforcer(str(abac_model))

            @attrs.frozen
            class Doc:
                owner: str

            docs = [(rng.choice(users), rng.choice(users)) for _ in range(args.checks)]
            abac_requests = {u: request(ctx, u, None) for u in {u for u, _ in docs}}
            for user, owner in docs[:2000]:
                ours = (await engine.authorize(abac_requests[user], "bench:doc:read", {"owner": owner})).allowed
                assert ours == abac.enforce(user, Doc(owner), "read") == (user == owner)
            results.append(
                await atimed(
                    "plexica ABAC (warm request)",
                    [partial(engine.authorize, abac_requests[u], "bench:doc:read", {"owner": o}) for u, o in docs],
                )
            )
            results.append(
                timed("casbin ABAC Enforcer.enforce", [partial(abac.enforce, u, Doc(o), "read") for u, o in docs])
            )
    return results


def report(results: list[Result]) -> None:
    fast = next(r for r in results if r.name == "casbin FastEnforcer.enforce")
    abac = next(r for r in results if r.name == "casbin ABAC Enforcer.enforce")
    print(f"\n{'check':<44} {'n':>6} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} {'vs casbin':>10}")
    for result in results:
        baseline = abac if "ABAC" in result.name else fast
        speedup = baseline.p50 / result.p50
        print(
            f"{result.name:<44} {len(result.samples):>6} {result.p50:>9.2f} {result.p99:>9.2f} "
            f"{result.mean:>9.2f} {speedup:>9.1f}x"
        )
    empty = timed("timer", [partial(int)] * 20000)
    print(f"\n(per-sample timer and call overhead, included above: {empty.p50:.2f} us at p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=20000, help="timed checks per warm scenario")
    parser.add_argument("--cold", type=int, default=300, help="users timed for first checks")
    parser.add_argument("--plain", type=int, default=50, help="checks timed on casbin's plain Enforcer")
    parser.add_argument("--seed", type=int, default=1)
    report(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
