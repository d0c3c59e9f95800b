"""Verifying a bearer JWT: signature against the issuer's keys, then the claims Courier relies on."""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt

from courier_authorizer.settings import MAX_ID_CHARS, MAX_TOKEN_CHARS

ALGORITHMS = ("RS256",)  # never "none" or HMAC: a public JWKS key must not double as an HMAC secret


class TokenRejected(Exception):
    """The token does not open a connection. The message names the reason and never holds the token."""


@dataclass(frozen=True)
class Identity:
    user_id: str
    tenant_id: str


class KeySource(Protocol):
    """Finds the public key that signed a token (by its `kid`)."""

    def signing_key(self, token: str) -> jwt.PyJWK: ...


class JwksUrlKeySource:
    """An issuer's JWKS over HTTPS, cached and kept current.

    The whole set is fetched again once it is `max_age_s` old, so a key the issuer removed stops
    being trusted within that time; a token naming a `kid` the set lacks (a rotation) fetches it
    again at once, but at most once per `refresh_cooldown_s`, so tokens with made-up kids cannot
    turn the authorizer into a flood of requests to the issuer. A set that is too old and cannot
    be fetched is not used: tokens are refused until the issuer answers again.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5,
        max_age_s: float = 600,
        refresh_cooldown_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=timeout_s)
        self._max_age_s = max_age_s
        self._cooldown_s = refresh_cooldown_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def signing_key(self, token: str) -> jwt.PyJWK:
        kid = _kid(token)
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._max_age_s
            if stale or kid not in self._keys:
                may_fetch = self._attempted_at is None or now - self._attempted_at >= self._cooldown_s
                if may_fetch:
                    self._fetch(now, stale)
                elif stale:
                    self._keys = {}  # too old to trust, too soon to ask again
            key = self._keys.get(kid)
        if key is None:
            raise TokenRejected("no signing key for the token's kid")
        return key

    def _fetch(self, now: float, stale: bool) -> None:
        self._attempted_at = now
        try:
            document = self._client.fetch_data()
            keys = jwt.PyJWKSet.from_dict(document).keys
        except jwt.PyJWKClientConnectionError as error:
            if stale:
                self._keys = {}
            raise TokenRejected(f"the issuer's keys could not be fetched: {error}") from error
        except jwt.PyJWTError as error:
            if stale:
                self._keys = {}
            raise TokenRejected(f"the issuer's key set is unusable: {error}") from error
        self._keys = {key.key_id: key for key in keys if key.key_id is not None}
        self._fetched_at = now


def _kid(token: str) -> str:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.DecodeError as error:
        raise TokenRejected("the token is not a JWT") from error
    if not isinstance(kid, str):
        raise TokenRejected("the token names no signing key (kid)")
    return kid


class JwksFileKeySource:
    """A JWKS file on disk: the local dev issuer's public keys. Read on first use, reread for a new kid."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._keys: dict[str, jwt.PyJWK] = {}
        self._lock = threading.Lock()

    def signing_key(self, token: str) -> jwt.PyJWK:
        kid = _kid(token)
        with self._lock:
            if kid not in self._keys:
                self._keys = self._load()
            key = self._keys.get(kid)
        if key is None:
            raise TokenRejected("no signing key for the token's kid")
        return key

    def _load(self) -> dict[str, jwt.PyJWK]:
        try:
            document = json.loads(self._path.read_text())
        except (OSError, ValueError) as error:
            raise TokenRejected(f"the dev issuer's JWKS at {self._path} is unreadable") from error
        try:
            keys = jwt.PyJWKSet.from_dict(document).keys
        except jwt.PyJWTError as error:
            raise TokenRejected(f"the dev issuer's JWKS at {self._path} has no usable key") from error
        return {key.key_id: key for key in keys if key.key_id is not None}


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose tokens Courier accepts, and what its tokens must say."""

    issuer: str
    audience: str
    keys: KeySource
    tenant_claim: str
    default_tenant: str | None = None
    token_use: str | None = None


class TokenVerifier:
    """Turns a bearer token into an Identity, or raises TokenRejected."""

    def __init__(self, issuers: Sequence[TrustedIssuer], *, leeway_s: float) -> None:
        self._issuers = {trusted.issuer: trusted for trusted in issuers}
        self._leeway_s = leeway_s

    def verify(self, token: str) -> Identity:
        if len(token) > MAX_TOKEN_CHARS:  # before any decoding: a huge token costs nothing
            raise TokenRejected(f"the token is longer than {MAX_TOKEN_CHARS} characters")
        trusted = self._issuer_of(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                trusted.keys.signing_key(token),
                algorithms=list(ALGORITHMS),
                issuer=trusted.issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRejected("the token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise TokenRejected("the token is not valid yet") from error
        except jwt.InvalidSignatureError as error:
            raise TokenRejected("bad signature") from error
        except jwt.PyJWTError as error:
            raise TokenRejected(f"invalid token: {error}") from error
        _check_audience(claims, trusted.audience)
        token_use = claims.get("token_use")
        if trusted.token_use is not None and token_use is not None and token_use != trusted.token_use:
            raise TokenRejected(f"token_use is {token_use!r}, expected {trusted.token_use!r}")
        return Identity(user_id=_identifier(claims.get("sub"), "sub"), tenant_id=_tenant(claims, trusted))

    def _issuer_of(self, token: str) -> TrustedIssuer:
        # Read `iss` unverified only to pick the key set; the signature and `iss` are verified next.
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise TokenRejected("the token is not a JWT") from error
        issuer = unverified.get("iss")
        trusted = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise TokenRejected("the token's issuer is not trusted")
        return trusted


def _check_audience(claims: dict[str, Any], audience: str) -> None:
    # ID tokens (and most OIDC issuers) carry `aud`; Cognito access tokens carry `client_id` instead.
    aud = claims.get("aud")
    if aud is not None:
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience in audiences:
            return
        raise TokenRejected("wrong audience")
    if claims.get("client_id") == audience:
        return
    raise TokenRejected("wrong audience" if "client_id" in claims else "the token names no audience")


def _tenant(claims: dict[str, Any], trusted: TrustedIssuer) -> str:
    value = claims.get(trusted.tenant_claim)
    if value is None and trusted.default_tenant is not None:
        return trusted.default_tenant
    return _identifier(value, trusted.tenant_claim)


def _identifier(value: object, claim: str) -> str:
    """A user or tenant id as Courier stores it: a non-blank string of at most MAX_ID_CHARS, with no
    control or format characters (NUL would break SQL and logs, others hide what an id is)."""
    if not isinstance(value, str) or not value.strip():
        raise TokenRejected(f"the token has no {claim!r} claim")
    if len(value) > MAX_ID_CHARS:
        raise TokenRejected(f"the {claim!r} claim is longer than {MAX_ID_CHARS} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in value):
        raise TokenRejected(f"the {claim!r} claim contains control or unassigned characters")
    return value
