"""``akashone-es audit``: seal the log into its hash chain, take a digest, verify."""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from akashone_es.cli.common import EXIT_FAILED, EXIT_USAGE, Bars, State, bars, fail, plural
from akashone_es.cli.options import date_value, file_to_write

if TYPE_CHECKING:
    from akashone_es.audit import Digest

FY = re.compile(r"\d{4}-\d{2}")
app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The log's proof and its personal data: the hash chain (seal, "
                       "digest, verify), exports, retention, personal data in clear.")


@app.command()
def seal(ctx: typer.Context) -> None:
    """Seal every event not sealed yet (what digest and verify also do first)."""
    import psycopg  # noqa: PLC0415

    from akashone_es import audit as chain  # noqa: PLC0415

    state: State = ctx.obj
    with state.storage("audit seal") as storage, psycopg.connect(storage.dsn) as conn:
        position, head = chain.seal(conn)
    state.console.print(f"sealed up to position {position}: {head.hex()}")


@app.command()
def digest(ctx: typer.Context,
           out: Annotated[Path, typer.Option(help="where to save the digest (JSON)",
                                             callback=file_to_write)]
           = Path("akashone-digest.json")) -> None:
    """Seal, then print and save the digest of the chain's head.

    Keep it outside the database: it is what a rewritten log is checked against."""
    import psycopg  # noqa: PLC0415

    from akashone_es import audit as chain  # noqa: PLC0415

    state: State = ctx.obj
    with state.storage("audit digest") as storage, psycopg.connect(storage.dsn) as conn:
        found = chain.digest(conn)
    try:
        out.write_text(found.dumps())
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    # one value per line: the 64-digit hash wraps in no narrow terminal's middle of a phrase
    state.console.print(f"position {found.position}\nhead     {found.hash}\nat       {found.at}",
                        soft_wrap=True)
    state.console.print(f"saved to {out}")


@app.command()
def verify(ctx: typer.Context,
           digest_file: Annotated[Path | None, typer.Option(
               "--digest", help="a digest saved earlier: the log must still reach it")]
           = None) -> None:
    """Recompute the chain from the log and compare it with every seal (and a digest).

    Exit 1 at the first position that does not match. Events written since the last seal
    are sealed afterwards, when all is well."""
    import psycopg  # noqa: PLC0415

    from akashone_es import audit as chain  # noqa: PLC0415

    state: State = ctx.obj
    expected = None if digest_file is None else _digest(digest_file)
    with state.storage("audit verify") as storage, psycopg.connect(storage.dsn) as conn:
        started = time.perf_counter()
        verdict = chain.verify(conn, expected)
        elapsed = time.perf_counter() - started
        newly = 0
        if verdict.ok:  # what was written since is sealed for the next verify
            newly = chain.seal_tail(conn)
    if not verdict.ok:
        where = "" if verdict.position is None else f"position {verdict.position}: "
        fail(f"{where}{verdict.problem}", EXIT_FAILED)
    rate = verdict.events / elapsed if elapsed else 0
    # positions skip the numbers of rolled-back writes: a count is not a position
    against = (f", and the chain at position {expected.position} equals the digest's"
               if expected else "")
    state.console.print(f"OK: {plural(verdict.events, 'event')} match their seals{against}"
                        f" ({rate:,.0f} events/s)")
    if newly:
        state.console.print(f"{plural(newly, 'event')} written since the last seal "
                            f"{'was' if newly == 1 else 'were'} sealed now: the next verify "
                            "checks them")


@app.command("verify-export")
def verify_export(ctx: typer.Context,
                  export_file: Annotated[Path, typer.Argument(
                      help="a file written by akashone-es export", metavar="FILE")],
                  digest_file: Annotated[Path, typer.Option(
                      "--digest", help="the digest you kept (not one sent with the export)")],
                  complete: Annotated[bool, typer.Option(
                      "--complete", help="also require the whole log up to the digest: "
                      "from the chain's start, nothing hidden (an export with no filters)")
                  ] = False,
                  ) -> None:
    """Check an export against a digest you kept, with no database.

    Every line's hash is recomputed from the one before, and the chain must reach the
    digest's hash. This proves the events shown unaltered and in place; that a filtered
    export left out no event its filters match is the exporter's word (--complete proves
    an export of everything)."""
    from akashone_es import export as offline  # noqa: PLC0415

    state: State = ctx.obj
    expected = _digest(digest_file)
    try:
        with export_file.open(encoding="utf-8") as lines:
            verdict = offline.verify_export(lines, expected, complete=complete)
    except OSError as exc:
        fail(f"cannot read the export {export_file}: {exc.strerror}", EXIT_USAGE)
    except UnicodeDecodeError:
        fail(f"{export_file} is not UTF-8 text: not an export")
    if not verdict.ok:
        fail(f"{export_file}: {verdict.problem}")
    span = ("from the chain's start" if verdict.anchor == 0
            else f"from after position {verdict.anchor}")
    state.console.print(f"OK: {plural(verdict.lines - 1, 'line')} {span} reach the digest at "
                        f"position {expected.position}: {verdict.shown} events shown, "
                        f"{verdict.hidden} hidden (a leaf only)")


def _digest(path: Path) -> Digest:
    """A digest saved earlier; one that cannot be read is a bad argument, saying why."""
    from akashone_es import audit as chain  # noqa: PLC0415

    try:
        return chain.Digest.loads(path.read_bytes())
    except OSError as exc:
        problem = str(exc.strerror)
    except ValueError as exc:
        problem = str(exc)
    fail(f"cannot read the digest {path}: {problem}", EXIT_USAGE)


@app.command("retention-sweep")
def retention_sweep(ctx: typer.Context,
                    today: Annotated[date | None, typer.Option(
                        help="the date to sweep as of, such as 2026-12-01 (default: today)",
                        metavar="DATE", parser=date_value)] = None,
                    hold: Annotated[list[str] | None, typer.Option(
                        help="a financial year under a legal hold, e.g. 2026-27 (repeat "
                             "for several)")] = None,
                    ) -> None:
    """Destroy each financial year's buyer-details key once its GST retention ended.

    CGST Act s.36: records are kept 72 months after the year's annual return is due (31
    December after the year ends); a year under a legal hold (--hold) is kept."""
    state: State = ctx.obj
    for year in hold or []:
        if not FY.fullmatch(year):
            fail(f"--hold: {year!r} is not a financial year such as 2026-27", EXIT_USAGE)
    with state.storage("audit retention-sweep") as storage:
        years = storage.retention_sweep(today, holds=hold or [])
    if not years:
        state.console.print("no financial year holds buyer details yet")
    for swept in years:
        state.console.print(f"FY {swept.fy}: kept until {swept.kept_until}: {swept.state}")


@app.command("personal-data")
def personal_data(ctx: typer.Context) -> None:
    """Count the events that hold personal data in clear.

    They were written before personal data was encrypted per person, so destroying a key
    cannot erase them (the log never changes): audit reencrypt copies the log into a new
    database with them encrypted."""
    import orjson  # noqa: PLC0415
    import psycopg  # noqa: PLC0415

    from akashone_es import audit as chain  # noqa: PLC0415
    from akashone_es.personal import clear_fields  # noqa: PLC0415

    state: State = ctx.obj
    counts: dict[str, int] = {}
    events = 0
    with state.storage("audit personal-data") as storage, \
            psycopg.connect(storage.dsn) as conn, conn.cursor(name="akashone_personal") as cur:
        cur.itersize = chain.BATCH
        cur.execute("SELECT topic, state, originator_id FROM public.akashone_events"
                    " ORDER BY notification_id")
        for topic, stored, originator_id in cur:
            found = clear_fields(topic, orjson.loads(bytes(stored)), originator_id)
            events += bool(found)
            for field in found:
                name = f"{topic.partition(':')[2]} {field}"
                counts[name] = counts.get(name, 0) + 1
    if not events:
        state.console.print("no event holds personal data in clear")
        return
    verb = "holds" if events == 1 else "hold"
    state.console.print(f"{plural(events, 'event')} {verb} personal data in clear:")
    for name, count in sorted(counts.items()):
        state.console.print(f"  {name}: {count}")


@app.command()
def reencrypt(ctx: typer.Context,
              into: Annotated[str, typer.Option(
                  "--into", metavar="DATABASE",
                  help="the new, empty database: a name on the same server, or a URL")],
              ) -> None:
    """Copy the log into a new database with the personal data it holds in clear encrypted.

    Events written before personal data was encrypted keep it in clear, and the log never
    changes. The copy has every event at its own position, each such value encrypted under
    its person's key (or erased, for a person already erased); the keys come along, the
    projections are rebuilt and both hash chains sealed. Stop every writer first. Then point
    DATABASE_URL at the new database, and keep the old one (and its digest) only as long as
    the law asks."""
    from akashone_es.persistence.database import with_database  # noqa: PLC0415
    from akashone_es.reencrypt import copy_encrypted, same_database  # noqa: PLC0415

    state: State = ctx.obj
    with state.storage("audit reencrypt") as source:
        target = into if "://" in into or "=" in into else with_database(source.dsn, into)
        if same_database(source.dsn, target):
            fail("--into: names the database being copied; name a new, empty one", EXIT_USAGE)
        with state.storage("audit reencrypt", create=True, dsn=target) as new, \
                bars(state) as progress:
            done = copy_encrypted(source, new, Bars(progress))
    state.console.print(f"copied {plural(done.events, 'event')} and {plural(done.keys, 'key')}; "
                        f"{done.changed} held personal data in clear")
    state.console.print(f"  {plural(done.sealed, 'value')} encrypted, {done.erased} erased "
                        "(their person's key was destroyed)")
    for name, found in (("old", done.source), ("new", done.target)):
        if found is not None:  # both are, once the copy is made
            state.console.print(f"{name} log: position {found.position}  head {found.hash}",
                                soft_wrap=True)
    state.console.print("next: point DATABASE_URL at the new database; keep the old one, and "
                        "its digest, only as long as the law asks")
