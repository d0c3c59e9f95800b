"""The local dev issuer and `courier token`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt
from typer.testing import CliRunner

from courier_authorizer.settings import DEV_AUDIENCE, DEV_ISSUER
from courier_local.cli import app
from courier_local.dev_issuer import DevIssuer


def test_the_key_is_created_on_first_use_owner_only_and_reused(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path / "dev-issuer")
    assert not (tmp_path / "dev-issuer").exists()  # building the issuer touches nothing

    first = issuer.issue("alice", "acme")
    key_bytes = issuer.private_key_path.read_bytes()
    second = DevIssuer(tmp_path / "dev-issuer").issue("bob", "acme")

    assert stat.S_IMODE(issuer.private_key_path.stat().st_mode) == 0o600
    assert issuer.private_key_path.read_bytes() == key_bytes
    keys = jwt.PyJWKSet.from_dict(json.loads(issuer.jwks_path.read_text()))
    assert "d" not in json.loads(issuer.jwks_path.read_text())["keys"][0]  # public half only
    for token in (first, second):
        kid = jwt.get_unverified_header(token)["kid"]
        jwt.decode(token, keys[kid], algorithms=["RS256"], audience=DEV_AUDIENCE, issuer=DEV_ISSUER)


def test_courier_token_prints_a_token_for_the_user_and_tenant(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["token", "--user", "alice", "--tenant", "acme", "--ttl", "60", "--issuer-dir", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), options={"verify_signature": False})
    assert (claims["sub"], claims["custom:tenant_id"], claims["iss"]) == ("alice", "acme", DEV_ISSUER)
    assert claims["exp"] - claims["iat"] == 60
    assert (tmp_path / "jwks.json").exists()
