"""The Cognito pool: admins create users, and no client can set a user's tenant."""

from __future__ import annotations

from infra_harness import Recorded


def test_no_self_sign_up_and_the_tenant_is_not_writable_by_the_app_client(stage: Recorded) -> None:
    pool = stage.one("aws:cognito/userPool:UserPool", "auth").inputs
    client = stage.one("aws:cognito/userPoolClient:UserPoolClient", "auth").inputs

    assert pool["adminCreateUserConfig"]["allowAdminCreateUserOnly"] is True
    [tenant] = [schema for schema in pool["schemas"] if schema["name"] == "tenant_id"]
    assert tenant["mutable"] is False
    # Unset, Cognito lets the client write every attribute; set, it lists exactly what it may write.
    assert client["writeAttributes"] == ["email"]
    assert "custom:tenant_id" in client["readAttributes"]
