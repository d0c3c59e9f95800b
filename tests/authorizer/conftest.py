"""Fixtures: the test OIDC issuer (authorizer.issuer) serving its JWKS over local HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from .issuer import LocalIssuer, new_rsa_key, serve_issuer


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def test_issuer(rsa_key: rsa.RSAPrivateKey) -> Iterator[LocalIssuer]:
    with serve_issuer(rsa_key) as issuer:
        yield issuer
