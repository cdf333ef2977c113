"""``plexica remote keygen``: the key it prints or writes signs context tokens a plugin's verifier accepts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from plexica.cli.main import main
from plexica.remote import ContextSigner, parse_signing_key
from plexica.settings import load_settings
from plexica_sdk.errors import AuthenticationError
from plexica_sdk.remote import ContextVerifier
from plexica_sdk.types import TenantContext

pytestmark = pytest.mark.anyio

ACME = TenantContext(tenant_id="t-1", slug="acme", schema="tenant_acme")


def _plexica(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


async def _round_trip(key_text: str) -> str:
    """Sign a token with the key as ``remote.signing_keys`` holds it; verify it as a plugin does. Its kid."""
    signer = ContextSigner([parse_signing_key(key_text)])

    async def jwks() -> dict[str, object]:
        return signer.jwks()

    verified = await ContextVerifier("notes", jwks).verify(signer.issue("notes", ACME))
    assert verified.tenant_context().slug == "acme"
    return signer.current_kid


async def test_the_printed_key_is_one_private_jwk_line_that_signs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _plexica(capsys, "remote", "keygen")
    assert code == 0, err
    assert out.count("\n") == 1
    key = json.loads(out)
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["d"] and key["kid"]
    assert await _round_trip(out.strip()) == key["kid"]  # default kid: the thumbprint, as the settings make it

    _, again, _ = _plexica(capsys, "remote", "keygen")
    assert json.loads(again)["d"] != key["d"]


async def test_kid_names_the_key_in_tokens_and_the_jwks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _plexica(capsys, "remote", "keygen", "--kid", "2026-12.a_1")
    assert code == 0, err
    assert await _round_trip(out.strip()) == "2026-12.a_1"

    # As the settings take it: the first key of remote.signing_keys signs, the JWKS publishes it.
    settings = tmp_path / "plexica.toml"
    settings.write_text(f'data_dir = "{tmp_path}"\n[remote]\nsigning_keys = [{json.dumps(out.strip())}]\n')
    loaded = ContextSigner([parse_signing_key(text) for text in load_settings(settings).remote.signing_keys])
    assert [entry["kid"] for entry in loaded.jwks()["keys"]] == ["2026-12.a_1"]
    assert "d" not in loaded.jwks()["keys"][0]

    code, _, err = _plexica(capsys, "remote", "keygen", "--kid", "a b")
    assert code == 2 and "--kid" in err


async def test_output_writes_a_0600_file_and_never_overwrites(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "signing-key.json"
    code, out, err = _plexica(capsys, "remote", "keygen", "--kid", "k1", "--output", str(target))
    assert code == 0, err
    assert out == ""  # the secret goes to the file only
    assert f"wrote signing key k1 to {target}" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    written = target.read_text()
    assert await _round_trip(written.strip()) == "k1"

    code, out, err = _plexica(capsys, "remote", "keygen", "-o", str(target))
    assert code == 1 and out == ""
    assert err == f"error: {target} exists: not overwritten\n"
    assert target.read_text() == written  # the key that still signs is intact


async def test_a_key_from_another_run_does_not_verify(capsys: pytest.CaptureFixture[str]) -> None:
    first = parse_signing_key(_plexica(capsys, "remote", "keygen", "--kid", "same")[1].strip())
    second = parse_signing_key(_plexica(capsys, "remote", "keygen", "--kid", "same")[1].strip())
    signer, forger = ContextSigner([first]), ContextSigner([second])

    async def jwks() -> dict[str, object]:
        return signer.jwks()

    with pytest.raises(AuthenticationError, match="signature"):
        await ContextVerifier("notes", jwks).verify(forger.issue("notes", ACME))
