"""Composition root: builds the Authorizer from its settings, once per container."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from courier_authorizer.authorizer import Authorizer
from courier_authorizer.observability import logger as service_logger
from courier_authorizer.settings import DEV_AUDIENCE, DEV_ISSUER, AuthorizerSettings
from courier_authorizer.verifier import (
    JwksFileKeySource,
    JwksUrlKeySource,
    KeySource,
    TokenVerifier,
    TrustedIssuer,
)


def build_authorizer(
    settings: AuthorizerSettings, *, key_source: KeySource | None = None, logger: Logger | None = None
) -> Authorizer:
    """`key_source` replaces the JWKS URL of the configured issuer (tests); the dev issuer reads its file."""
    issuers: list[TrustedIssuer] = []
    if settings.jwt_issuer is not None and settings.jwt_audience is not None:
        jwks_url = settings.resolved_jwks_url
        assert jwks_url is not None
        issuers.append(
            TrustedIssuer(
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                keys=key_source
                or JwksUrlKeySource(
                    jwks_url,
                    timeout_s=settings.jwks_timeout_s,
                    max_age_s=settings.jwks_max_age_s,
                    refresh_cooldown_s=settings.jwks_refresh_cooldown_s,
                ),
                tenant_claim=settings.tenant_claim,
                default_tenant=settings.default_tenant,
                token_use=settings.token_use,
            )
        )
    if settings.dev_issuer_enabled:
        issuers.append(
            TrustedIssuer(
                issuer=DEV_ISSUER,
                audience=DEV_AUDIENCE,
                keys=JwksFileKeySource(settings.dev_jwks_path),
                tenant_claim=settings.tenant_claim,
                default_tenant=settings.default_tenant,
                token_use=settings.token_use,
            )
        )
    verifier = TokenVerifier(issuers, leeway_s=settings.leeway_s)
    return Authorizer(verifier, logger or service_logger)
