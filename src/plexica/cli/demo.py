"""``plexica serve --demo``: a tenant to play with, tokens, and the commands to try."""

from __future__ import annotations

from plexica.platform import Platform
from plexica.tenancy.naming import realm_name
from plexica_sdk.errors import PlexicaError, TenantNotFoundError

__all__ = ["DEMO_TENANT", "prepare_demo"]

DEMO_TENANT = "acme"


async def prepare_demo(platform: Platform, base_url: str) -> str:
    """Make sure the demo tenant exists and return instructions with fresh tokens."""
    try:
        await platform.tenants.get(DEMO_TENANT)
    except TenantNotFoundError:
        await platform.tenants.provision(DEMO_TENANT, name="Acme Corp")
    issuer = platform.dev_issuer
    if issuer is None:
        raise PlexicaError("--demo needs the built-in dev issuer (no Keycloak configured)")
    realm = realm_name(DEMO_TENANT)
    editor = issuer.mint(
        realm=realm, subject="alice", username="alice", roles=["member", "notes-editor"], expires_in=8 * 3600
    )
    reader = issuer.mint(realm=realm, subject="bob", username="bob", roles=["member"], expires_in=8 * 3600)
    plugins = ", ".join(platform.plugins.installable) or "none"
    return f"""
Plexica is starting on {base_url} with tenant '{DEMO_TENANT}' (plugins: {plugins}).

Try it in another terminal:

  export ALICE={editor}
  export BOB={reader}

  curl -s {base_url}/api/core/v1/me -H "Authorization: Bearer $ALICE"
  curl -s {base_url}/api/plugins/notes/notes -H "Authorization: Bearer $ALICE"
  curl -s -X POST {base_url}/api/plugins/notes/notes -H "Authorization: Bearer $ALICE" \\
       -H 'Content-Type: application/json' -d '{{"title": "Hello", "body": "from alice"}}'
  curl -s -X POST {base_url}/api/plugins/notes/notes -H "Authorization: Bearer $BOB" \\
       -H 'Content-Type: application/json' -d '{{"title": "Nope"}}'     # bob may only read: 403

More tokens: plexica token --tenant {DEMO_TENANT} --user carol --role member
Press Ctrl+C to stop.
"""
