"""`courier login`: sign a user in to a deployed stack's Cognito user pool and print their ID token.

The token is what the deployed authorizer accepts (`courier chat --url wss://… --token "$(courier
login …)"`). It uses Cognito's InitiateAuth with USER_PASSWORD_AUTH, which the stack's app client
allows; the password goes to Cognito over TLS and nowhere else (never to a log or the terminal).
InitiateAuth is unsigned, so no AWS credentials are needed. Exit codes match `courier chat`'s.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any

import boto3
import typer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

# Cognito's answers for "these credentials do not sign in" (user existence errors are masked as
# NotAuthorizedException by the stack's client, but another pool may not mask them).
REFUSED = frozenset(
    {
        "NotAuthorizedException",
        "UserNotFoundException",
        "UserNotConfirmedException",
        "PasswordResetRequiredException",
    }
)


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    CONNECT_FAILED = 3
    REFUSED = 4
    CHALLENGE = 5  # Cognito wants another step (a new password, MFA) this command does not do


class LoginFailed(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def id_token(client: Any, *, client_id: str, username: str, password: str) -> str:
    """The user's ID token from InitiateAuth (USER_PASSWORD_AUTH), or LoginFailed saying why not."""
    try:
        response = client.initiate_auth(
            ClientId=client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )
    except EndpointConnectionError as error:
        raise LoginFailed(f"Cannot reach Cognito: {error}", ExitCode.CONNECT_FAILED) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        if code in REFUSED:
            raise LoginFailed(f"Sign-in refused ({code}): {message}", ExitCode.REFUSED) from None
        raise LoginFailed(f"Cognito said {code}: {message}", ExitCode.ERROR) from None
    except BotoCoreError as error:
        raise LoginFailed(f"Cannot sign in: {error}", ExitCode.ERROR) from None
    challenge = response.get("ChallengeName")
    if challenge:
        hint = (
            " An administrator can set a permanent password: aws cognito-idp admin-set-user-password"
            " --user-pool-id <pool> --username <user> --password … --permanent"
            if challenge == "NEW_PASSWORD_REQUIRED"
            else ""
        )
        raise LoginFailed(
            f"Cognito asks for {challenge}, which courier login does not do.{hint}", ExitCode.CHALLENGE
        )
    token = response.get("AuthenticationResult", {}).get("IdToken")
    if not token:
        raise LoginFailed("Cognito answered without an ID token", ExitCode.ERROR)
    return str(token)


def login(
    client_id: Annotated[
        str,
        typer.Option("--client-id", help="The user pool's app client id (stack output userPoolClientId)."),
    ],
    region: Annotated[str, typer.Option("--region", help="The stack's region (aws:region).")],
    username: Annotated[str, typer.Option("--username", help="The user's e-mail address.")],
    password: Annotated[
        str,
        typer.Option(
            "--password",
            prompt=True,
            hide_input=True,
            envvar="COURIER_PASSWORD",
            help="Asked for when not given (or set COURIER_PASSWORD); avoid passing it as an argument.",
        ),
    ],
) -> None:
    """Sign USERNAME in to a deployed stack's Cognito pool and print their ID token (valid 60 minutes)."""
    client = boto3.client("cognito-idp", region_name=region, config=Config(retries={"max_attempts": 2}))
    try:
        token = id_token(client, client_id=client_id, username=username, password=password)
    except LoginFailed as failure:
        typer.echo(str(failure), err=True)
        raise typer.Exit(failure.code) from None
    typer.echo(token)
