"""A test OIDC issuer: RSA keys, a JWKS served over real local HTTP, and a token factory.

Shared by the authorizer and gateway tests (`from authorizer.issuer import ...`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from aws_events import websocket_authorizer
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER_AUDIENCE = "courier-web-client"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class LocalIssuer:
    """An OIDC issuer at http://127.0.0.1:<port>: /.well-known/jwks.json serves its public keys."""

    url: str
    key: rsa.RSAPrivateKey
    kid: str
    jwks_requests: list[str] = field(default_factory=list)
    # What the JWKS publishes: the signing key, unless a test rotates keys (kid -> key).
    published: dict[str, rsa.RSAPrivateKey] | None = None

    def published_keys(self) -> dict[str, rsa.RSAPrivateKey]:
        return self.published if self.published is not None else {self.kid: self.key}

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def token(
        self,
        *,
        sub: str = "alice",
        tenant: str | None = "acme",
        audience: str | None = ISSUER_AUDIENCE,
        issuer: str | None = None,
        expires_in: int = 600,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        extra: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer or self.url,
            "sub": sub,
            "iat": now,
            "exp": now + expires_in,
            "token_use": "id",
            "jti": str(uuid.uuid4()),
        }
        if audience is not None:
            claims["aud"] = audience
        if tenant is not None:
            claims["custom:tenant_id"] = tenant
        claims.update(extra or {})
        for name in drop:
            claims.pop(name, None)
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@contextmanager
def serve_issuer(rsa_key: rsa.RSAPrivateKey) -> Iterator[LocalIssuer]:
    """Serve the issuer's JWKS on a free port until the block ends."""
    issuer_box: list[LocalIssuer] = []

    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = issuer_box[0]
            issuer.jwks_requests.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            keys = [public_jwk(key, kid) for kid, key in issuer.published_keys().items()]
            body = json.dumps({"keys": keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    issuer_box.append(
        LocalIssuer(url=f"http://127.0.0.1:{server.server_port}", key=rsa_key, kid="test-key-1")
    )
    try:
        yield issuer_box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def connect_event(
    *, protocol: str | None = None, query_token: str | None = None, connection_id: str = "conn-1"
) -> dict[str, Any]:
    """A REQUEST authorizer event for $connect, as API Gateway sends it (tests/aws_events.py)."""
    headers = {"Sec-WebSocket-Protocol": protocol} if protocol is not None else {}
    query = {"token": query_token} if query_token is not None else None
    return websocket_authorizer(connection_id, headers=headers, query=query)
