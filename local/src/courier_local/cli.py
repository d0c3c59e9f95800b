"""The `courier` command: the local stack, a terminal client, dev tokens, the database, the model catalog.

Each command lives in its own module under courier_local.commands and is registered here.
"""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Courier on this machine.")

# Command registrations (one line per command module):


def main() -> None:
    app()
