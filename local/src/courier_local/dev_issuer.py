"""The local dev token issuer: Cognito's stand-in for `courier token` and the local stack.

It keeps one RSA signing key under `.courier/dev-issuer/` (created on first use, never at import)
and publishes the public half as a JWKS file. The authorizer trusts that file only when
DEV_ISSUER_ENABLED=true, which no deployed stage sets.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from courier_authorizer.settings import DEFAULT_TENANT_CLAIM, DEV_AUDIENCE, DEV_ISSUER

DEFAULT_DEV_ISSUER_DIR = Path(".courier/dev-issuer")
DEFAULT_TTL_S = 3600


class DevIssuer:
    """Signs dev tokens with a key kept in `directory` (private.pem, 0600) and publishes jwks.json."""

    def __init__(self, directory: Path = DEFAULT_DEV_ISSUER_DIR) -> None:
        self.directory = directory

    @property
    def jwks_path(self) -> Path:
        """The public JWKS the authorizer reads (DEV_JWKS_PATH)."""
        return self.directory / "jwks.json"

    @property
    def private_key_path(self) -> Path:
        return self.directory / "private.pem"

    def issue(
        self,
        user: str,
        tenant: str,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        tenant_claim: str = DEFAULT_TENANT_CLAIM,
        now: float | None = None,
    ) -> str:
        """A signed RS256 token for `user` in `tenant`, valid for `ttl_s` seconds (negative: expired)."""
        key, kid = self._signing_key()
        issued_at = int(time.time() if now is None else now)
        claims = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": user,
            tenant_claim: tenant,
            "token_use": "id",
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def ensure_key(self) -> Path:
        """Create the key pair and JWKS if missing; returns the JWKS path."""
        self._signing_key()
        return self.jwks_path

    def _signing_key(self) -> tuple[rsa.RSAPrivateKey, str]:
        if not self.private_key_path.exists():
            self._create_key()
        loaded = serialization.load_pem_private_key(self.private_key_path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError(f"{self.private_key_path} does not hold an RSA key")
        if not self.jwks_path.exists():  # the public half can always be rebuilt from the private key
            self._write_jwks(loaded)
        return loaded, _key_id(loaded)

    def _create_key(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # Write-then-rename, owner-only: two processes creating the key at once each leave a whole file.
        temporary = self.private_key_path.with_suffix(f".{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        temporary.replace(self.private_key_path)
        self.jwks_path.unlink(missing_ok=True)

    def _write_jwks(self, key: rsa.RSAPrivateKey) -> None:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": _key_id(key), "use": "sig", "alg": "RS256"})
        temporary = self.jwks_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"keys": [public]}, indent=2))
        temporary.replace(self.jwks_path)


def _key_id(key: rsa.RSAPrivateKey) -> str:
    """A stable kid: derived from the public key, so the JWKS and the tokens always agree."""
    numbers = key.public_key().public_numbers()
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{numbers.n:x}.{numbers.e:x}").hex[:16]
