"""The notes plugin's web front end: a module-federation remote kept in each tenant's object storage.

The remote entry ships in the package (``web/remoteEntry.js``); the plugin copies it into the
tenant's ``web`` namespace when it is installed or upgraded there, under a key holding the
version, and the host hands browsers a presigned URL of it (``GET /api/core/v1/frontend``).
"""

from __future__ import annotations

from importlib.resources import files

from plexica_sdk import FrontendDef, FrontendModule, Host, MenuItem, StorageNamespace

__all__ = ["FRONTEND", "WEB", "entry_key", "publish_remote_entry"]

VERSION = "1.0.0"

#: Where the remote entry lives in each tenant: small, JavaScript only.
WEB = StorageNamespace(name="web", max_bytes=64 * 1024, content_types=("text/javascript",))


def entry_key(version: str = VERSION) -> str:
    """The object key of ``version``'s remote entry (one per version, so an upgrade never serves stale code)."""
    return f"web/{version}/remoteEntry.js"


FRONTEND = FrontendDef(
    remote_entry=f"objects:{entry_key()}",
    permission="notes:note:read",
    modules=(
        FrontendModule(
            name="./NotesList",
            route="/notes",
            menu=MenuItem(label="Notes", icon="note", order=10),
            permission="notes:note:read",
        ),
        FrontendModule(name="./NoteEditor", route="/notes/new", slot="notes.toolbar", permission="notes:note:write"),
    ),
)


async def publish_remote_entry(host: Host, version: str = VERSION) -> None:
    """Store the packaged remote entry in the host's tenant (idempotent: the same bytes each time)."""
    source = files("plexica_plugin_notes").joinpath("web/remoteEntry.js").read_bytes()
    await host.objects.put(entry_key(version), source, content_type="text/javascript")
