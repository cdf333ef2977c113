"""``plexica remote keygen``: a new private Ed25519 JWK for ``remote.signing_keys`` (docs/remote.md).

The key is printed as one JSON line (what the settings list takes), or written to a new file
readable by its owner only: an existing file is never overwritten, so a key that still signs
cannot be lost by a second run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click

from plexica.remote import generate_signing_key

__all__ = ["keygen"]

#: A ``kid`` travels in every token's header: printable, short, no separators of any kind.
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_kid(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _KID.fullmatch(value):
        raise click.BadParameter("1 to 64 of A-Z a-z 0-9 . _ -")
    return value


@click.command("keygen")
@click.option("--kid", callback=_check_kid, help="The key's id. Default: its RFC 7638 thumbprint.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the key to this new file (mode 0600) instead of printing it; an existing file is refused.",
)
def keygen(kid: str | None, output: Path | None) -> None:
    """Make a private Ed25519 JWK that signs remote plugins' context tokens."""
    key = generate_signing_key(kid)
    if output is None:
        click.echo(key)
        return
    try:
        # O_EXCL: refuse any existing file (or symlink); the mode is set at creation, never widened.
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{output} exists: not overwritten") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {output}: {exc.strerror}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    click.echo(f"wrote signing key {json.loads(key)['kid']} to {output} (mode 0600)", err=True)
