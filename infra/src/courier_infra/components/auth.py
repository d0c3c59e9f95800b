"""Auth: who may open a WebSocket. A Cognito user pool and app client by default, or an external
OIDC issuer (`courier:auth: {issuer, audience, jwksUrl}`), in which case no pool is created.

The authorizer Lambda verifies ID tokens against the issuer's JWKS; the tenant comes from the
`courier:tenantClaim` claim (default `custom:tenant_id`, an immutable user-pool attribute).

Who decides a user's tenant: only an administrator. The pool allows no self sign-up (users are
created with `admin-create-user`, docs/deploy.md), and the app client may write no attribute but
`email`, so a signed-in user cannot set or change `custom:tenant_id` through the client either.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from courier_infra import iam
from courier_infra.config import StackConfig

TENANT_ATTRIBUTE = "custom:tenant_id"
CLIENT_WRITABLE_ATTRIBUTES = ("email",)


class Auth(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("courier:auth:Auth", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.user_pool: aws.cognito.UserPool | None = None
        self.client: aws.cognito.UserPoolClient | None = None

        if config.auth is not None:
            self.issuer: pulumi.Output[str] = pulumi.Output.from_input(config.auth.issuer)
            self.audience: pulumi.Output[str] = pulumi.Output.from_input(config.auth.audience)
            self.jwks_url: pulumi.Output[str] = pulumi.Output.from_input(config.auth.jwks_url)
        else:
            self.user_pool = aws.cognito.UserPool(
                name,
                name=f"courier-{config.stage}",
                username_attributes=["email"],
                auto_verified_attributes=["email"],
                password_policy={
                    "minimum_length": 12,
                    "require_lowercase": True,
                    "require_uppercase": True,
                    "require_numbers": True,
                    "require_symbols": False,
                },
                schemas=[
                    {
                        "name": "tenant_id",
                        "attribute_data_type": "String",
                        "mutable": False,
                        "string_attribute_constraints": {"min_length": "1", "max_length": "64"},
                    }
                ],
                # Admins create users; nobody signs themselves up (and picks their own tenant).
                admin_create_user_config={"allow_admin_create_user_only": True},
                deletion_protection="ACTIVE" if config.deletion_protection else "INACTIVE",
                tags={"courier:stage": config.stage},
                opts=child,
            )
            self.client = aws.cognito.UserPoolClient(
                name,
                user_pool_id=self.user_pool.id,
                generate_secret=False,  # a browser app cannot keep a secret
                # SRP for browsers; USER_PASSWORD_AUTH (over TLS) for `courier login` and the AWS CLI.
                explicit_auth_flows=[
                    "ALLOW_USER_SRP_AUTH",
                    "ALLOW_USER_PASSWORD_AUTH",
                    "ALLOW_REFRESH_TOKEN_AUTH",
                ],
                prevent_user_existence_errors="ENABLED",
                # Cognito lets a client write every attribute unless told otherwise: never the tenant.
                write_attributes=list(CLIENT_WRITABLE_ATTRIBUTES),
                read_attributes=["email", "email_verified", TENANT_ATTRIBUTE],
                id_token_validity=60,
                access_token_validity=60,
                token_validity_units={"id_token": "minutes", "access_token": "minutes"},
                opts=child,
            )
            self.issuer = pulumi.Output.concat(
                f"https://cognito-idp.{config.region}.{iam.dns_suffix_of(config.region)}/", self.user_pool.id
            )
            self.audience = self.client.id
            self.jwks_url = pulumi.Output.concat(self.issuer, "/.well-known/jwks.json")

        self.register_outputs({"issuer": self.issuer, "audience": self.audience})
