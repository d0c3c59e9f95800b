"""The authorizer's settings: which issuers' tokens open a WebSocket connection.

Read from the environment once, at cold start, by the composition root.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from courier_shared.settings import CourierSettings

# The local dev issuer (`courier token`): its tokens carry this issuer and audience. They are
# trusted only when DEV_ISSUER_ENABLED is true, which no deployed stage ever sets.
DEV_ISSUER = "urn:courier:dev-issuer"
DEV_AUDIENCE = "courier-local"
DEFAULT_DEV_JWKS_PATH = Path(".courier/dev-issuer/jwks.json")
# Cognito puts custom user-pool attributes into the ID token as "custom:<name>".
DEFAULT_TENANT_CLAIM = "custom:tenant_id"
# The database stores user and tenant ids in 128 characters.
MAX_ID_CHARS = 128
# Longer tokens are refused before they are decoded. Cognito's are 1-2 KB (more with many groups);
# the local API Gateway refuses any upgrade header line over 8 KiB anyway.
MAX_TOKEN_CHARS = 8 * 1024


class AuthorizerSettings(CourierSettings):
    """Who may connect.

    `JWT_ISSUER` is the issuer URL (Cognito: https://cognito-idp.{region}.amazonaws.com/{pool id});
    `JWT_AUDIENCE` is the app client id, matched against `aud` (ID tokens) or `client_id` (Cognito
    access tokens). The tenant comes from `TENANT_CLAIM`; a token without it is refused unless
    `DEFAULT_TENANT` is set (single-tenant deployments).
    """

    jwt_issuer: str | None = Field(default=None, alias="JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, alias="JWT_AUDIENCE")
    jwks_url: str | None = Field(default=None, alias="JWKS_URL")
    tenant_claim: str = Field(default=DEFAULT_TENANT_CLAIM, alias="TENANT_CLAIM")
    default_tenant: str | None = Field(default=None, alias="DEFAULT_TENANT", min_length=1, max_length=128)
    # Cognito's token_use claim ("id" or "access"): checked only when the token carries one.
    token_use: str = Field(default="id", alias="TOKEN_USE")
    leeway_s: float = Field(default=30, ge=0, le=300, alias="LEEWAY_S")
    jwks_timeout_s: float = Field(default=5, gt=0, le=30, alias="JWKS_TIMEOUT_S")
    # A key the issuer removed is trusted at most this long after (the cached set is refetched);
    # a token with an unknown kid refetches at most once per cooldown.
    jwks_max_age_s: float = Field(default=600, ge=10, le=86_400, alias="JWKS_MAX_AGE_S")
    jwks_refresh_cooldown_s: float = Field(default=60, ge=1, le=3_600, alias="JWKS_REFRESH_COOLDOWN_S")
    dev_issuer_enabled: bool = Field(default=False, alias="DEV_ISSUER_ENABLED")
    dev_jwks_path: Path = Field(default=DEFAULT_DEV_JWKS_PATH, alias="DEV_JWKS_PATH")

    @model_validator(mode="after")
    def _needs_an_issuer(self) -> AuthorizerSettings:
        if self.jwt_issuer is None and not self.dev_issuer_enabled:
            raise ValueError("no token issuer: set JWT_ISSUER (and JWT_AUDIENCE), or DEV_ISSUER_ENABLED=true")
        if self.jwt_issuer is not None and self.jwt_audience is None:
            raise ValueError("JWT_ISSUER is set but JWT_AUDIENCE is not: tokens for any client would pass")
        if self.jwks_refresh_cooldown_s > self.jwks_max_age_s:
            raise ValueError("JWKS_REFRESH_COOLDOWN_S is longer than JWKS_MAX_AGE_S")
        return self

    @property
    def resolved_jwks_url(self) -> str | None:
        """Where the issuer publishes its keys: by default the well-known path Cognito and OIDC use."""
        if self.jwks_url is not None:
            return self.jwks_url
        if self.jwt_issuer is None:
            return None
        return f"{self.jwt_issuer.rstrip('/')}/.well-known/jwks.json"
