"""``akashone-es erase <user id>``: erase a person's data by destroying its keys."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from akashone_es.cli.common import State, fail, plural, uuid_argument
from akashone_es.domain.reasons import ERASURE_REASONS

REASONS = ", ".join(ERASURE_REASONS)


def _user_id(value: str) -> str:
    """``USER_ID``: a user's id is a UUID."""
    return str(uuid_argument(value, "'user_id'"))


def _reason(value: str) -> str:
    """``--reason``: one of the fixed vocabulary (the erasure records it)."""
    if value not in ERASURE_REASONS:
        raise typer.BadParameter(f"{value!r} is not one of: {REASONS}")
    return value


def erase(ctx: typer.Context,
          user_id: Annotated[str, typer.Argument(help="the person's user id",
                                                 callback=_user_id)],
          reason: Annotated[str, typer.Option(
              help=f"one of: {REASONS}", callback=_reason)] = ERASURE_REASONS[0],
          yes: Annotated[bool, typer.Option("--yes", help="do not ask to confirm")] = False,
          ) -> None:
    """Erase a person's data for good by destroying their keys (DPDP Act s.12(3)).

    Their name, email, addresses, IP addresses and user agents then read as erased
    everywhere. Buyer details on their tax invoices are kept until the year's GST retention
    ends (audit retention-sweep). The log and its hash chain do not change. A person
    already erased is refused: nothing is written."""
    state: State = ctx.obj
    if not yes and not _confirmed(user_id):
        fail("not confirmed: nothing erased (pass --yes to erase without the question)")
    with state.storage("erase") as storage:
        report = storage.erase_personal_data(user_id, reason)
    state.console.print(f"erased: {plural(len(report.subjects), 'key')} destroyed "
                        f"(erasure {report.erasure_id}); the log and its hash chain are "
                        "unchanged")


def _confirmed(user_id: str) -> bool:
    """Whether the person at the terminal (or the input piped in) answers yes; no answer
    (the end of input, no input at all) is no.

    The question goes to stderr, and only to a terminal: piped in, the answer was given
    before it was asked. Nothing goes to stdout (``typer.confirm`` writes a space there,
    which would start the line that says what was erased)."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return False
    asked = stdin.isatty()
    if asked:
        typer.echo(f"Erase the personal data of {user_id}? This cannot be undone [y/N]: ",
                   nl=False, err=True)
    answer = stdin.readline()
    if asked and not answer.endswith("\n"):  # Ctrl-D: end the question's line
        typer.echo(err=True)
    return answer.strip().lower() in {"y", "yes"}
