"""The mounted route template of a request, for metrics: ``/api/plugins/notes/notes/{id}``.

Starlette's routers leave the innermost matched route in ``scope["route"]`` and add each mount's
matched prefix to ``scope["root_path"]``. :class:`RouteTemplates` walks the app's routes once and
maps each (route, mount prefix) pair to its full template, so a request costs one dict lookup.
A request a mount took but none of its routes did (a plugin refusing an anonymous caller before
its router runs, a 404 under the mount) is ``{mount}/*``; one no route matched at all is
:data:`~plexica.observability.metrics.UNMATCHED_ROUTE`: bounded labels, never the raw path.
Mount prefixes are static paths in Plexica (core API, plugin mounts); a mount with path
parameters would have one concrete prefix per value, so its routes would count as unmatched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, final

from starlette.routing import BaseRoute, Host, Mount, Route, WebSocketRoute
from starlette.types import Scope

from plexica.observability.metrics import UNMATCHED_ROUTE

__all__ = ["RouteTemplates"]


@final
class RouteTemplates:
    """Full route templates of an app's routes, looked up per request.

    Args:
        routes: the app's top-level routes (``Mount`` children are walked, including the router
            inside a plugin's guarding app).
    """

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._templates: dict[tuple[int, str], str] = {}
        self._keep: list[BaseRoute] = []  # ids stay valid while the routes live
        self._walk(routes, "")

    def _walk(self, routes: Iterable[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route | WebSocketRoute):
                self._keep.append(route)
                self._templates[id(route), prefix] = prefix + route.path
            elif isinstance(route, Mount):
                # Refused or unmatched inside the mount (401 before a plugin's router, 404): its prefix.
                self._keep.append(route)
                self._templates[id(route), prefix + route.path] = f"{prefix}{route.path}/*"  # root_path has the mount
                inner: Any = getattr(route.app, "router", route.app)  # a PluginApp guards its router
                self._walk(getattr(inner, "routes", None) or (), prefix + route.path)
            elif isinstance(route, Host):
                self._walk(route.routes, prefix)

    def of(self, scope: Scope, root_path: str) -> str:
        """The template of the route that served ``scope``; ``root_path`` is the app's own (before routing)."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        prefix = scope.get("root_path", "")[len(root_path) :]
        return self._templates.get((id(route), prefix), UNMATCHED_ROUTE)
