"""Core API: the module-federation remotes a shell registers for the caller (``/api/core/v1/frontend``).

Any user of the addressed tenant may ask; what they get depends on the tenant's enabled plugins and
on their own permissions (in the ``X-Workspace-ID`` workspace when they send one), see
:mod:`plexica.plugins.frontend`. The answer is per user, so it is ``private``, short-lived and
varies on ``Authorization`` and ``X-Workspace-ID``; ``If-None-Match`` gets a 304.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.guards import require_tenant
from plexica.http.schemas.platform import FrontendManifest
from plexica.http.services import services_of
from plexica_sdk.converter import unstructure
from plexica_sdk.schema import Header, api

__all__ = ["CACHE_CONTROL", "routes"]

#: Short enough that enabling a plugin or granting a role shows within a minute.
CACHE_CONTROL = "private, max-age=60"


@api(
    response=FrontendManifest,
    headers=(Header(name="If-None-Match", description="an ETag of an earlier answer: 304 when unchanged"),),
    errors=(304,),
    response_headers=("ETag",),
)
async def get_frontend(request: Request) -> Response:
    """The caller's remotes: plugin, version, scope, remote entry URL and the modules they may use."""
    ctx = require_tenant(request)
    catalog = services_of(request).frontend
    manifest = await catalog.manifest(ctx)
    headers = {
        "ETag": catalog.etag(manifest),
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Authorization, X-Workspace-ID",
    }
    sent = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if headers["ETag"] in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    return JSONResponse(unstructure(manifest), headers=headers)


routes = [Route("/frontend", get_frontend, methods=["GET"])]
