"""Pagination cursors a client can hand back but not forge: the store's position, HMAC-signed.

A cursor is `<position>.<signature>`: the position is the store's own (opaque) cursor, and the
signature (HMAC-SHA256, cut to 128 bits) covers it together with what it was issued for: the
action, the user, and for `getHistory` the conversation. A cursor altered, made up, issued to
another user, or taken from another action or conversation fails the check and is a bad request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from courier_shared.db.store import Owner

SIGNATURE_BYTES = 16
MIN_KEY_BYTES = 32


class ForgedCursor(ValueError):
    """A cursor Courier did not issue for this action, user and conversation."""


class CursorSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the cursor signing key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def issue(self, position: str, *, action: str, owner: Owner, scope: str = "") -> str:
        return f"{position}.{self._signature(position, action, owner, scope)}"

    def open(self, cursor: str, *, action: str, owner: Owner, scope: str = "") -> str:
        """The position a cursor stands for; ForgedCursor unless it was issued for exactly this."""
        position, dot, signature = cursor.rpartition(".")
        expected = self._signature(position, action, owner, scope)
        # Bytes: compare_digest refuses str with non-ASCII characters, and a client may send any.
        if not dot or not position or not hmac.compare_digest(signature.encode(), expected.encode()):
            raise ForgedCursor("The cursor is not one Courier issued for this request.")
        return position

    def _signature(self, position: str, action: str, owner: Owner, scope: str) -> str:
        # NUL separates the parts: none of them can contain it (ids are checked by the authorizer).
        message = "\x00".join((action, owner.tenant_id, owner.user_id, scope, position)).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
