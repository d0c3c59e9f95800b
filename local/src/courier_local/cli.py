"""The `courier` command: the local stack, a terminal client, dev tokens, the database, the model catalog,
signing in to a deployed stack.

Each command lives in its own module under courier_local.commands and is registered here.
"""

import typer

# Plain help (not the rich panels): the panels show every flag as taking a value ("--json <bool>").
app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="Courier on this machine."
)


@app.callback()
def _commands() -> None:
    """Courier on this machine. (A callback keeps `courier <command>` a group even with one command.)"""


# Command registrations (one line per command module):
from courier_local.commands import token as token_command  # noqa: E402

app.command("token")(token_command.token)
from courier_local.commands import chat as chat_command  # noqa: E402
from courier_local.commands import db as db_command  # noqa: E402
from courier_local.commands import dev as dev_command  # noqa: E402

app.command("dev")(dev_command.dev)
app.command("chat")(chat_command.chat)
app.add_typer(db_command.db_app, name="db")

from courier_local.commands import models as models_command  # noqa: E402

app.add_typer(models_command.models_app, name="models")

from courier_local.commands import login as login_command  # noqa: E402

app.command("login")(login_command.login)

from courier_local.commands import page as page_command  # noqa: E402

app.command("page")(page_command.page)


def main() -> None:
    app()
