"""Validly signed tokens with hostile claims, oversized tokens, and keys the issuer rotates away."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from support import FakeClock

from courier_authorizer.authorizer import Authorizer
from courier_authorizer.composition import build_authorizer
from courier_authorizer.settings import MAX_TOKEN_CHARS, AuthorizerSettings
from courier_authorizer.verifier import JwksUrlKeySource

from .issuer import ISSUER_AUDIENCE, LocalIssuer, new_rsa_key
from .test_authorizer import bearer, build, refused


@pytest.fixture
def authorizer(test_issuer: LocalIssuer) -> Authorizer:
    return build(JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"sub": "alice\x00admin"}, "'sub' claim contains control", id="nul-in-sub"),
        pytest.param({"sub": "alice\nINFO forged log line"}, "'sub' claim contains control", id="newline"),
        pytest.param({"sub": "ali\u200bce"}, "'sub' claim contains control", id="zero-width-space"),
        pytest.param({"sub": "a" * 129}, "'sub' claim is longer than 128", id="long-sub"),
        pytest.param({"sub": "   "}, "no 'sub' claim", id="blank-sub"),
        pytest.param({"sub": 42}, "invalid token", id="number-sub"),
        pytest.param({"custom:tenant_id": "acme\x00"}, "'custom:tenant_id' claim contains", id="nul-tenant"),
        pytest.param({"custom:tenant_id": "t" * 129}, "'custom:tenant_id' claim is longer", id="long-tenant"),
        pytest.param({"custom:tenant_id": ["acme"]}, "no 'custom:tenant_id' claim", id="list-tenant"),
    ],
)
def test_a_signed_token_with_a_hostile_id_is_refused_as_a_bad_token(
    authorizer: Authorizer, test_issuer: LocalIssuer, claims: dict[str, Any], reason: str
) -> None:
    refused(authorizer, bearer(test_issuer.token(extra=claims)), reason)


def test_unicode_ids_within_the_rules_are_accepted(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    token = test_issuer.token(sub="Zoë-東京-👩", extra={"custom:tenant_id": "société"})
    assert authorizer.authorize(bearer(token))["context"]["tenantId"] == "société"


def test_an_oversized_token_is_refused_before_it_is_decoded(
    authorizer: Authorizer, test_issuer: LocalIssuer
) -> None:
    token = test_issuer.token(extra={"padding": "p" * MAX_TOKEN_CHARS})

    refused(authorizer, bearer(token), f"longer than {MAX_TOKEN_CHARS}")
    assert test_issuer.jwks_requests == []  # not even the keys were fetched


def rotating_authorizer(
    issuer: LocalIssuer, clock: FakeClock, *, max_age_s: float, cooldown_s: float
) -> Authorizer:
    keys = JwksUrlKeySource(
        issuer.jwks_url, max_age_s=max_age_s, refresh_cooldown_s=cooldown_s, clock=clock.monotonic
    )
    settings = AuthorizerSettings(JWT_ISSUER=issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE)
    logger = Logger(service=f"authorizer-test-{uuid.uuid4().hex[:6]}", stream=io.StringIO())
    return build_authorizer(settings, key_source=keys, logger=logger)


def test_a_key_the_issuer_removed_is_refused_once_the_cached_set_is_too_old(test_issuer: LocalIssuer) -> None:
    clock = FakeClock()
    authorizer = rotating_authorizer(test_issuer, clock, max_age_s=600, cooldown_s=60)
    old_token = test_issuer.token(sub="alice")
    assert authorizer.authorize(bearer(old_token))["context"]["userId"] == "alice"

    new_key = new_rsa_key()
    test_issuer.published = {"test-key-2": new_key}  # the issuer rotated: the old key is gone
    clock.advance(599)
    assert authorizer.authorize(bearer(old_token))["context"]["userId"] == "alice"  # within the bound

    clock.advance(1)
    refused(authorizer, bearer(old_token), "no signing key")
    new_token = test_issuer.token(sub="bob", key=new_key, kid="test-key-2")
    assert authorizer.authorize(bearer(new_token))["context"]["userId"] == "bob"


def test_a_new_kid_is_fetched_at_once_but_made_up_kids_fetch_at_most_once_per_cooldown(
    test_issuer: LocalIssuer,
) -> None:
    clock = FakeClock()
    authorizer = rotating_authorizer(test_issuer, clock, max_age_s=600, cooldown_s=60)
    authorizer.authorize(bearer(test_issuer.token()))
    clock.advance(61)
    new_key = new_rsa_key()
    test_issuer.published = {test_issuer.kid: test_issuer.key, "test-key-2": new_key}

    rotated = test_issuer.token(sub="carol", key=new_key, kid="test-key-2")
    assert authorizer.authorize(bearer(rotated))["context"]["userId"] == "carol"  # no wait for max age
    assert len(test_issuer.jwks_requests) == 2

    for _ in range(20):
        made_up = test_issuer.token(key=new_rsa_key(), kid=f"kid-{uuid.uuid4().hex}")
        refused(authorizer, bearer(made_up), "no signing key")
    assert len(test_issuer.jwks_requests) == 2  # within the cooldown: not one more request

    clock.advance(60)
    refused(authorizer, bearer(test_issuer.token(kid="another-made-up-kid")), "no signing key")
    assert len(test_issuer.jwks_requests) == 3


def test_a_set_too_old_to_trust_that_cannot_be_fetched_is_not_used(test_issuer: LocalIssuer) -> None:
    clock = FakeClock()
    authorizer = rotating_authorizer(test_issuer, clock, max_age_s=600, cooldown_s=60)
    token = test_issuer.token()
    authorizer.authorize(bearer(token))
    test_issuer.published = {}  # an issuer that publishes nothing usable

    clock.advance(600)

    refused(authorizer, bearer(token), "unusable")
    refused(authorizer, bearer(token), "no signing key")  # within the cooldown: still not trusted


def test_settings_keep_the_refresh_cooldown_within_the_max_age() -> None:
    with pytest.raises(ValueError, match="JWKS_REFRESH_COOLDOWN_S"):
        AuthorizerSettings(
            JWT_ISSUER="https://issuer.example",
            JWT_AUDIENCE="a",
            JWKS_MAX_AGE_S=60,
            JWKS_REFRESH_COOLDOWN_S=120,
        )
