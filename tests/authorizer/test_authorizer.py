"""The $connect authorizer: which tokens open a connection, and what API Gateway is told."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from aws_lambda_powertools import Logger

from courier_authorizer.authorizer import Authorizer, Unauthorized
from courier_authorizer.composition import build_authorizer
from courier_authorizer.settings import AuthorizerSettings
from courier_local.dev_issuer import DevIssuer

from .issuer import ISSUER_AUDIENCE, LocalIssuer, connect_event, new_rsa_key


def build(log: io.StringIO | None = None, **settings: Any) -> Authorizer:
    logger = Logger(service=f"authorizer-test-{uuid.uuid4().hex[:6]}", stream=log or io.StringIO())
    return build_authorizer(AuthorizerSettings(**settings), logger=logger)


@pytest.fixture
def authorizer(test_issuer: LocalIssuer) -> Authorizer:
    return build(JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE)


def bearer(token: str) -> dict[str, Any]:
    return connect_event(protocol=f"courier.v1, bearer.{token}")


def refused(authorizer: Authorizer, event: dict[str, Any], reason: str) -> None:
    """Refused with the 401 message, and refused for `reason` (the authorizer's log line says which)."""
    log = authorizer._logger.registered_handler.stream  # type: ignore[attr-defined]
    log.seek(0, 2)
    written = log.tell()
    with pytest.raises(Unauthorized) as raised:
        authorizer.authorize(event)
    assert str(raised.value) == "Unauthorized"  # the exact message API Gateway turns into a 401
    log.seek(written)
    [line] = [json.loads(line) for line in log.read().splitlines()]
    assert line["message"] == "connect refused"
    assert reason in line["reason"], line["reason"]


def test_a_valid_token_in_the_subprotocol_header_allows_the_connect_method_with_the_identity(
    authorizer: Authorizer, test_issuer: LocalIssuer
) -> None:
    event = bearer(test_issuer.token(sub="alice", tenant="acme"))

    result = authorizer.authorize(event)

    assert result["principalId"] == "alice"
    assert result["context"] == {"userId": "alice", "tenantId": "acme"}
    assert result["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
    ]
    assert len(json.dumps(result)) < 8 * 1024  # API Gateway's authorizer result limit


def test_a_token_in_the_query_string_is_accepted(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    result = authorizer.authorize(connect_event(query_token=test_issuer.token(sub="bob")))
    assert result["context"]["userId"] == "bob"


def test_the_jwks_is_fetched_once_and_reused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    for user in ("u1", "u2", "u3"):
        authorizer.authorize(bearer(test_issuer.token(sub=user)))
    assert test_issuer.jwks_requests == ["/.well-known/jwks.json"]


def test_no_token_is_refused(authorizer: Authorizer) -> None:
    refused(authorizer, connect_event(), "no token")
    refused(authorizer, connect_event(protocol="courier.v1"), "no token")
    refused(authorizer, connect_event(protocol="courier.v1, bearer."), "no token")


def test_a_token_signed_by_another_key_is_refused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    forged = test_issuer.token(key=new_rsa_key())  # same kid, wrong key
    refused(authorizer, bearer(forged), "bad signature")


def test_a_tampered_token_is_refused_for_its_signature_alone(
    authorizer: Authorizer, test_issuer: LocalIssuer
) -> None:
    # A real token whose payload says mallory: every claim valid (issuer, audience, expiry, tenant,
    # token_use), only the signature is alice's.
    header, payload, signature = test_issuer.token(sub="alice").split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = "mallory"
    tampered = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()

    refused(authorizer, bearer(f"{header}.{tampered}.{signature}"), "bad signature")

    # The same claims, properly signed, pass: nothing but the signature gave the forgery away.
    resigned = jwt.encode(claims, test_issuer.key, algorithm="RS256", headers={"kid": test_issuer.kid})
    assert authorizer.authorize(bearer(resigned))["context"] == {"userId": "mallory", "tenantId": "acme"}


def test_an_expired_token_is_refused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    refused(authorizer, bearer(test_issuer.token(expires_in=-120)), "expired")


def test_expiry_within_the_leeway_is_still_accepted(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    authorizer.authorize(bearer(test_issuer.token(expires_in=-5)))  # default leeway: 30 s


def test_a_token_not_yet_valid_is_refused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    refused(authorizer, bearer(test_issuer.token(extra={"nbf": 2**33})), "not valid yet")


@pytest.mark.parametrize("audience", ["someone-elses-client", None])
def test_a_wrong_or_missing_audience_is_refused(
    authorizer: Authorizer, test_issuer: LocalIssuer, audience: str | None
) -> None:
    reason = "wrong audience" if audience else "names no audience"
    refused(authorizer, bearer(test_issuer.token(audience=audience)), reason)


def test_a_cognito_access_token_matches_the_audience_by_client_id(
    authorizer: Authorizer, test_issuer: LocalIssuer
) -> None:
    access = test_issuer.token(audience=None, extra={"client_id": ISSUER_AUDIENCE, "token_use": "id"})
    assert authorizer.authorize(bearer(access))["context"]["userId"] == "alice"
    wrong_client = test_issuer.token(audience=None, extra={"client_id": "other"})
    refused(authorizer, bearer(wrong_client), "wrong audience")


def test_a_token_from_another_issuer_is_refused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    refused(authorizer, bearer(test_issuer.token(issuer="https://evil.example.com")), "issuer is not trusted")


def test_the_wrong_token_use_is_refused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    refused(authorizer, bearer(test_issuer.token(extra={"token_use": "access"})), "token_use")


def test_unsigned_and_hmac_tokens_are_refused(authorizer: Authorizer, test_issuer: LocalIssuer) -> None:
    claims = {
        "iss": test_issuer.url,
        "aud": ISSUER_AUDIENCE,
        "sub": "mallory",
        "exp": 2**40,
        "custom:tenant_id": "x",
    }
    unsigned = jwt.encode(claims, key=None, algorithm="none", headers={"kid": test_issuer.kid})
    refused(authorizer, bearer(unsigned), "invalid token")
    hmac = jwt.encode(
        claims,
        key="a-guessable-secret-of-enough-length!!",
        algorithm="HS256",
        headers={"kid": test_issuer.kid},
    )
    refused(authorizer, bearer(hmac), "invalid token")


def test_garbage_is_refused(authorizer: Authorizer) -> None:
    for junk in ("not-a-jwt", "a.b.c", "eyJ.eyJ.sig", "é" * 10):
        refused(authorizer, bearer(junk), "not a JWT")


def test_a_token_without_a_tenant_is_refused_unless_a_default_tenant_is_set(test_issuer: LocalIssuer) -> None:
    token = test_issuer.token(tenant=None)
    refused(
        build(JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE), bearer(token), "custom:tenant_id"
    )

    single_tenant = build(JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE, DEFAULT_TENANT="solo")
    assert single_tenant.authorize(bearer(token))["context"]["tenantId"] == "solo"


def test_the_tenant_claim_is_configurable(test_issuer: LocalIssuer) -> None:
    authorizer = build(JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE, TENANT_CLAIM="org")
    token = test_issuer.token(tenant=None, extra={"org": "initech"})
    assert authorizer.authorize(bearer(token))["context"]["tenantId"] == "initech"


def test_an_unreachable_jwks_refuses_instead_of_crashing(test_issuer: LocalIssuer) -> None:
    authorizer = build(
        JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE, JWKS_URL=f"{test_issuer.url}/missing.json"
    )
    refused(authorizer, bearer(test_issuer.token()), "could not be fetched")


def test_the_log_says_why_but_never_holds_the_token(test_issuer: LocalIssuer) -> None:
    log = io.StringIO()
    authorizer = build(log, JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE)
    expired = test_issuer.token(expires_in=-120)
    good = test_issuer.token(sub="carol")

    refused(authorizer, bearer(expired), "expired")
    refused(authorizer, connect_event(query_token=expired + "x"), "not a JWT")
    authorizer.authorize(bearer(good))

    text = log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["message"] for line in lines] == ["connect refused", "connect refused", "connect allowed"]
    assert lines[0]["reason"] == "the token has expired"
    assert lines[2]["user_id"] == "carol"
    for token in (expired, good):
        for part in token.split("."):
            assert part not in text


def test_dev_tokens_are_refused_unless_the_dev_issuer_is_enabled(
    tmp_path: Path, test_issuer: LocalIssuer
) -> None:
    issuer = DevIssuer(tmp_path / "dev-issuer")
    token = issuer.issue("alice", "acme")

    deployed = build(
        JWT_ISSUER=test_issuer.url, JWT_AUDIENCE=ISSUER_AUDIENCE, DEV_JWKS_PATH=str(issuer.jwks_path)
    )
    refused(deployed, bearer(token), "issuer is not trusted")

    local = build(DEV_ISSUER_ENABLED=True, DEV_JWKS_PATH=str(issuer.jwks_path))
    assert local.authorize(bearer(token))["context"] == {"userId": "alice", "tenantId": "acme"}
    refused(local, bearer(issuer.issue("alice", "acme", ttl_s=-120)), "expired")
    refused(
        local, bearer(test_issuer.token()), "issuer is not trusted"
    )  # the OIDC issuer is not configured here


def test_a_dev_key_created_after_the_authorizer_started_is_picked_up(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path / "dev-issuer")
    local = build(DEV_ISSUER_ENABLED=True, DEV_JWKS_PATH=str(issuer.jwks_path))
    assert not issuer.jwks_path.exists()

    assert local.authorize(bearer(issuer.issue("dave", "acme")))["context"]["userId"] == "dave"


def test_settings_refuse_a_configuration_that_trusts_nobody_or_any_audience() -> None:
    with pytest.raises(ValueError, match="no token issuer"):
        AuthorizerSettings()
    with pytest.raises(ValueError, match="JWT_AUDIENCE"):
        AuthorizerSettings(JWT_ISSUER="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc")
    cognito = AuthorizerSettings(
        JWT_ISSUER="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/", JWT_AUDIENCE="c"
    )
    assert (
        cognito.resolved_jwks_url
        == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json"
    )
    assert cognito.dev_issuer_enabled is False
