"""The two-tenant isolation kit: write as tenant A, then look for A everywhere tenant B can reach.

The kit plants a unique *canary* string in what tenant A writes through the plugin's own routes,
collects the ids A's responses return, and then searches for any of those markers in everything
of tenant B: B's answers to the same reads, every table of B's schema, B's cache keys and values,
B's objects, and the events B's consumers received. Each place is also searched for tenant A, so
the report shows the check could have seen a leak; at least one of A's reads must return the
canary, or the check proves nothing and fails.

Workspace-scoped routes (those answering 422 for a missing ``X-Workspace-ID``, as
:func:`plexica_sdk.workspaces.workspace_id` does) are detected: the kit then makes a workspace in
each tenant, runs every call in its tenant's workspace, and also sends B's reads with A's
workspace id, which the host must refuse with 404.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, final

import attrs

from plexica_sdk.converter import unstructure
from plexica_sdk.http import WORKSPACE_HEADER
from plexica_sdk.testing.host import ProvisionedTenant, ProvisionedWorkspace, RunningHost

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache

__all__ = ["CANARY", "Call", "IsolationError", "IsolationKit", "IsolationReport"]

#: The placeholder replaced by the check's canary in paths and JSON bodies.
CANARY: Final = "{canary}"
CHANNELS: Final = ("routes", "database", "cache", "objects", "events")
_MAX_SCANNED_OBJECT: Final = 1024 * 1024


def _tuple(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Call:
    """One request to a plugin route, relative to its mount (``/notes``, ``/notes/{id}``).

    ``{canary}`` in the path or in any string of ``json`` becomes the check's canary; ``{name}``
    in the path becomes the value of ``name`` in the latest JSON object a write returned
    (``{id}`` is the id of what A just created).

    Attributes:
        method: the HTTP method.
        path: the path under ``/api/plugins/{plugin}``.
        json: the JSON body, if any.
        roles: the caller's tenant roles (default: the check's ``roles``).
        user: the caller.
        status: the status A's call must get (default: any 2xx).
    """

    method: str
    path: str
    json: Any = None
    roles: tuple[str, ...] | None = attrs.field(default=None, kw_only=True)
    user: str = attrs.field(default="alice", kw_only=True)
    status: int | None = attrs.field(default=None, kw_only=True)

    @classmethod
    def get(cls, path: str, **kwargs: Any) -> Call:
        return cls("GET", path, **kwargs)

    @classmethod
    def post(cls, path: str, json: Any = None, **kwargs: Any) -> Call:
        return cls("POST", path, json, **kwargs)

    @classmethod
    def put(cls, path: str, json: Any = None, **kwargs: Any) -> Call:
        return cls("PUT", path, json, **kwargs)


@attrs.frozen
class Leak:
    """Something of tenant A found from tenant B."""

    channel: str
    where: str
    marker: str

    def __str__(self) -> str:
        return f"{self.channel}: {self.where} holds {self.marker!r}"


class IsolationError(AssertionError):
    """Tenant B can see tenant A's data; ``leaks`` says where."""

    def __init__(self, leaks: Sequence[Leak], report: IsolationReport) -> None:
        lines = "\n  ".join(str(leak) for leak in leaks)
        super().__init__(f"tenant {report.tenant_b!r} sees data of tenant {report.tenant_a!r}:\n  {lines}")
        self.leaks = tuple(leaks)
        self.report = report


@final
@attrs.frozen(kw_only=True)
class IsolationReport:
    """What a check looked at.

    Attributes:
        tenant_a: the writing tenant's slug.
        tenant_b: the looking tenant's slug.
        canary: the string planted in A's writes.
        markers: the canary and the ids A's writes returned.
        seen_in_a: per channel, how many places of A hold a marker (a channel at 0 there could
            not have shown a leak: e.g. a plugin that caches nothing).
        scanned_in_b: per channel, how many places of B were searched.
    """

    tenant_a: str
    tenant_b: str
    canary: str
    markers: tuple[str, ...] = attrs.field(converter=_tuple)
    seen_in_a: Mapping[str, int]
    scanned_in_b: Mapping[str, int]


def _substitute(value: Any, replacements: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, text in replacements.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, Mapping):
        return {k: _substitute(v, replacements) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_substitute(v, replacements) for v in value]
    return value


def _ids(value: Any) -> list[str]:
    """Every ``id`` string in a JSON document long enough to be unique (uuids and the like)."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "id" and isinstance(item, str) and len(item) >= 8:
                found.append(item)
            else:
                found.extend(_ids(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_ids(item))
    return found


def _wants_workspace(response: Any) -> bool:
    """Whether ``response`` is the 422 of a route that needs ``X-Workspace-ID`` (``WorkspaceRequiredError``)."""
    if response.status_code != 422:
        return False
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, Mapping) and e.get("field") == WORKSPACE_HEADER for e in errors)


def _markers_in(text: str, markers: Sequence[str]) -> list[str]:
    return [marker for marker in markers if marker in text]


@final
class IsolationKit:
    """Runs isolation checks between two tenants of one host (the ``isolation`` fixture).

    Args:
        host: the running test host.
        a: the tenant that writes.
        b: the tenant that must see nothing of A.
        plugin: the plugin whose routes are called (default: the first under test).
        workspaces: A's and B's workspace the calls run in; default: made when a route asks for one.
    """

    def __init__(
        self,
        host: RunningHost,
        a: ProvisionedTenant,
        b: ProvisionedTenant,
        *,
        plugin: str | None = None,
        workspaces: tuple[ProvisionedWorkspace, ProvisionedWorkspace] | None = None,
    ):
        self.host = host
        self.a = a
        self.b = b
        self.plugin = plugin or host.plugins[0]
        self.workspaces: dict[str, ProvisionedWorkspace] = {}
        if workspaces is not None:
            self.workspaces = {a.slug: workspaces[0], b.slug: workspaces[1]}
        self._detect = False
        self._users = ["alice"]

    async def check(
        self,
        writes: Sequence[Call],
        reads: Sequence[Call | str],
        *,
        roles: Sequence[str] = ("member",),
        expect_events: Sequence[str] = (),
        timeout: float = 5.0,
        workspace: bool | None = None,
    ) -> IsolationReport:
        """Write as A, then assert that nothing A wrote is visible from B anywhere.

        Args:
            writes: the calls A makes (with ``{canary}`` in what they store).
            reads: the calls both tenants make afterwards; a bare string is a ``GET`` of that path.
                ``{id}`` and the like name what A created, so B also tries A's resources directly.
            roles: the callers' tenant roles where a call names none.
            expect_events: event types A's writes publish; the check waits until each was
                delivered in A (carrying a marker) before it looks at B's consumers.
            timeout: seconds to wait for each expected event.
            workspace: True: run the calls in a workspace of each tenant (made by the first call's
                user, the other callers added as members); False: never send ``X-Workspace-ID``;
                None: as soon as a call of A is refused for want of a workspace.

        Returns:
            What was searched, and what was seen in A.

        Raises:
            IsolationError: a marker of A was found from B (every leak is listed).
            AssertionError: a write or read of A failed, or none of A's reads returned the canary.
        """
        canary = f"iso-{uuid.uuid4().hex}"
        replacements = {CANARY: canary}
        self._detect = workspace is None and not self.workspaces
        self._users = list(dict.fromkeys(c.user for c in [*writes, *reads] if isinstance(c, Call))) or ["alice"]
        if workspace:
            await self._make_workspaces()
        elif workspace is False:
            self.workspaces = {}
        markers: list[str] = [canary]
        for call in writes:
            body = await self._call(call, self.a, replacements, roles, expect_ok=True)
            markers.extend(marker for marker in _ids(body) if marker not in markers)
            if isinstance(body, Mapping):
                for key, value in body.items():
                    if isinstance(value, str | int):
                        replacements[f"{{{key}}}"] = str(value)
        read_calls = [Call.get(read) if isinstance(read, str) else read for read in reads]
        seen: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        scanned: dict[str, int] = dict.fromkeys(CHANNELS, 0)
        leaks: list[Leak] = []

        for call in read_calls:
            body = await self._call(call, self.a, replacements, roles, expect_ok=True)
            if canary in json.dumps(body):
                seen["routes"] += 1
        if not seen["routes"]:
            raise AssertionError(
                f"isolation check proves nothing: none of tenant {self.a.slug!r}'s reads returned the canary"
                " its writes stored; give reads that show what the writes created"
            )
        for event_type in expect_events:
            await self.host.events.wait_for(
                event_type,
                tenant=self.a.slug,
                timeout=timeout,
                where=lambda event: bool(_markers_in(json.dumps(unstructure(event)), markers)),
            )

        for call in read_calls:
            response = await self._request(call, self.b, replacements, roles)
            scanned["routes"] += 1
            if response.status_code >= 500:
                raise AssertionError(f"{call.method} {call.path} as tenant {self.b.slug!r}: {response.status_code}")
            for marker in _markers_in(response.text, markers):
                leaks.append(Leak("routes", f"{call.method} {self.host.url(call.path, plugin=self.plugin)}", marker))
        if self.workspaces:  # B names A's workspace: the host must answer as for one that does not exist
            foreign = self.workspaces[self.a.slug].id
            for call in read_calls:
                response = await self._request(call, self.b, replacements, roles, workspace=foreign)
                scanned["routes"] += 1
                where = f"{call.method} {self.host.url(call.path, plugin=self.plugin)} with A's {WORKSPACE_HEADER}"
                if response.status_code != 404:
                    leaks.append(Leak("routes", f"{where} (answered {response.status_code}, not 404)", foreign))
                leaks.extend(Leak("routes", where, marker) for marker in _markers_in(response.text, markers))

        for tenant, is_b in ((self.a, False), (self.b, True)):
            for channel, where, text in await self._places(tenant):
                found = _markers_in(text, markers)
                if is_b:
                    scanned[channel] += 1
                    leaks.extend(Leak(channel, where, marker) for marker in found)
                elif found:
                    seen[channel] += 1

        report = IsolationReport(
            tenant_a=self.a.slug,
            tenant_b=self.b.slug,
            canary=canary,
            markers=markers,
            seen_in_a=seen,
            scanned_in_b=scanned,
        )
        if leaks:
            raise IsolationError(leaks, report)
        return report

    async def _make_workspaces(self) -> None:
        """A workspace in A and in B, made by the first caller, with every other caller a member."""
        admin, *others = self._users
        for tenant in (self.a, self.b):
            made = await tenant.make_workspace(admin=admin, members=dict.fromkeys(others, "member"))
            self.workspaces[tenant.slug] = made

    async def _request(
        self,
        call: Call,
        tenant: ProvisionedTenant,
        replacements: Mapping[str, str],
        roles: Sequence[str],
        *,
        workspace: str | None = None,
    ) -> Any:
        selected = self.workspaces.get(tenant.slug)
        headers = tenant.headers(
            call.user,
            call.roles if call.roles is not None else roles,
            workspace=workspace or (selected.id if selected is not None else None),
        )
        path = self.host.url(_substitute(call.path, replacements), plugin=self.plugin)
        body = _substitute(call.json, replacements)
        return await self.host.client.request(call.method, path, json=body, headers=headers)

    async def _call(
        self,
        call: Call,
        tenant: ProvisionedTenant,
        replacements: Mapping[str, str],
        roles: Sequence[str],
        *,
        expect_ok: bool,
    ) -> Any:
        response = await self._request(call, tenant, replacements, roles)
        if self._detect and not self.workspaces and _wants_workspace(response):
            await self._make_workspaces()  # the route is workspace-scoped: run everything in workspaces
            response = await self._request(call, tenant, replacements, roles)
        ok = response.status_code == call.status if call.status is not None else 200 <= response.status_code < 300
        if expect_ok and not ok:
            raise AssertionError(
                f"{call.method} {call.path} as tenant {tenant.slug!r} got {response.status_code}: {response.text[:500]}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    async def _places(self, tenant: ProvisionedTenant) -> list[tuple[str, str, str]]:
        """Every (channel, where, text) of ``tenant`` outside the routes: rows, cache, objects, events."""
        places: list[tuple[str, str, str]] = []
        places.extend(await _database_rows(self.host, tenant))
        places.extend(await _cache_entries(self.host.platform.cache, tenant))
        places.extend(await _objects(self.host, tenant))
        for event in self.host.events.delivered_in(tenant.slug):
            places.append(("events", f"{event.type} {event.id}", json.dumps(unstructure(event), default=str)))
        return places


async def _database_rows(host: RunningHost, tenant: ProvisionedTenant) -> list[tuple[str, str, str]]:
    import sqlalchemy as sa

    schema = tenant.info.schema
    places: list[tuple[str, str, str]] = []
    async with host.platform.db.tenant_connection(schema) as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names(schema=schema))
        for name in names:
            rows = (await conn.execute(sa.select(sa.text("*")).select_from(sa.table(name, schema=schema)))).all()
            for number, row in enumerate(rows):
                places.append(("database", f"{schema}.{name} row {number}", " ".join(str(v) for v in row)))
    return places


async def _cache_entries(cache: Cache, tenant: ProvisionedTenant) -> list[tuple[str, str, str]]:
    from plexica.cache.memory import MemoryCache
    from plexica.cache.redis import RedisCache
    from plexica.tenancy.naming import cache_prefix

    prefix = cache_prefix(tenant.slug)
    items: list[tuple[str, bytes]] = []
    # The Cache protocol has no key listing (plugins must not enumerate); the kit reads the two
    # backends the host ships directly, as an operator would.
    if isinstance(cache, MemoryCache):
        items = [(key, value) for key, (value, _) in list(cache._entries.items()) if key.startswith(prefix)]
    elif isinstance(cache, RedisCache):
        client = cache._open()
        async for raw in client.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*"):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            items.append((key, await cache.get(key) or b""))
    else:
        raise TypeError(f"the isolation kit cannot list the keys of cache backend {type(cache).__name__}")
    return [("cache", f"key {key}", f"{key} {value.decode(errors='replace')}") for key, value in items]


async def _objects(host: RunningHost, tenant: ProvisionedTenant) -> list[tuple[str, str, str]]:
    from plexica_sdk.errors import NotFoundError

    platform = host.platform
    layout = platform.storage_layout
    bucket = layout.bucket(tenant.slug)
    try:
        infos = await platform.objects.list(bucket, layout.tenant_prefix(tenant.slug))
    except NotFoundError:
        return []
    places: list[tuple[str, str, str]] = []
    for info in infos:
        text = info.key
        if info.size <= _MAX_SCANNED_OBJECT:
            text += " " + (await platform.objects.get(bucket, info.key)).decode(errors="replace")
        places.append(("objects", f"{bucket}/{info.key}", text))
    return places
