"""``akashone-es projections``: status, catch-up, run, rebuild, verify and quarantine."""

from __future__ import annotations

import getpass
import signal
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Annotated

import typer

from akashone_es.cli.common import (
    EXIT_INTERRUPTED,
    Bars,
    State,
    bars,
    fail,
    quick_status,
    render_status_rows,
)
from akashone_es.errors import ProjectionError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from akashone_es.storage import Storage
    from projections.engine import Projection

app = typer.Typer(no_args_is_help=True, help="Operate the read side.")
#: the most events one transaction may take (more is one huge transaction, or past LIMIT's
#: bigint): AKASHONE_BATCH_SIZE has the same bounds
BATCH_MAX = 1_000_000
#: the largest log position (a bigint notification id)
POSITION_MAX = 2**63 - 1
NameArg = Annotated[list[str] | None, typer.Argument(help="projection names (default: all)")]
BatchOpt = Annotated[int | None, typer.Option(min=1, max=BATCH_MAX,
                                              help="events per transaction")]


class _Bars(Bars):
    """Bars that show only what is replayed: a projection none of whose events lie in the
    range gets no bar (it would read 0/0 while the log holds thousands of events). The
    display starts with the first bar: one started with none prints a blank line on
    stderr (above an error, or above ``caught up``)."""

    started = False

    def __call__(self, name: str, position: int, target: int) -> None:
        if target == 0 and name not in self.tasks:
            return
        if not self.started:
            self.progress.start()
            self.started = True
        super().__call__(name, position, target)

    def replayed(self, name: str) -> bool:
        """Whether ``name`` had events to replay (it has a bar)."""
        return name in self.tasks


@contextmanager
def _bars(state: State) -> Iterator[_Bars]:
    """Progress bars on stderr, shown from the first one on."""
    bar = _Bars(bars(state))
    try:
        yield bar
    finally:
        if bar.started:
            bar.progress.stop()


def _select(storage: Storage, names: list[str] | None, mode: str | None = None
            ) -> list[Projection]:
    known = {p.name: p for p in storage.projections}
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown projection(s): {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(known))}")
    chosen = [known[n] for n in names] if names else list(known.values())
    other = [p.name for p in chosen if mode is not None and p.mode != mode]
    if names and other:  # named, not of this mode: saying nothing would look like success
        of_mode = sorted(p.name for p in known.values() if p.mode == mode)
        raise typer.BadParameter(
            f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} not {mode} (every write "
            f"keeps an inline projection current); {mode}: {', '.join(of_mode)}")
    return [p for p in chosen if mode is None or p.mode == mode]


@app.command("status")
def status_command(ctx: typer.Context) -> None:
    """Head position, checkpoint and lag of each projection (and of the standby, when
    AKASHONE_READ_URL is set)."""
    state: State = ctx.obj
    rows, primary, held = quick_status(state)
    if rows is None:
        from projections.overview import held_back  # noqa: PLC0415
        from projections.overview import status as projection_status  # noqa: PLC0415

        with state.storage() as storage, storage._datastore.get_connection() as conn:
            rows = projection_status(conn, storage.projections)
            held = held_back(conn)
            primary = storage.dsn
    render_status_rows(state.console, rows, held)
    if state.settings.read_url and primary:
        from akashone_es.persistence.replica import describe_standby  # noqa: PLC0415

        state.console.print(describe_standby(primary, state.settings.read_url),
                            highlight=False)
    for row in rows:
        if row.failure is not None:  # one unwrapped line each: it names what to quarantine
            typer.echo(f"STOPPED {row.failure.message()}")


@app.command("catch-up")
def catch_up(ctx: typer.Context, names: NameArg = None, batch_size: BatchOpt = None) -> None:
    """Apply pending events to the async projections and seal them into the hash chain,
    then exit."""
    from akashone_es import audit as chain  # noqa: PLC0415
    from akashone_es.persistence.roles import app_dsn  # noqa: PLC0415
    from projections.runner import Runner  # noqa: PLC0415

    state: State = ctx.obj
    try:
        with state.storage() as storage:
            # names are checked before the bars start: a bar started shows as a blank line
            # above the error
            runner = Runner(app_dsn(storage.dsn, storage.settings),
                            _select(storage, names, "async"), storage.reader,
                            batch_size=batch_size or storage.settings.batch_size,
                            follow=chain.seal)
            with _bars(state) as bar:
                runner.run(once=True, progress=bar)
    except KeyboardInterrupt:  # Ctrl-C: each batch is applied with its checkpoint
        fail("interrupted: each projection's checkpoint keeps the events applied so far; "
             "catch-up again applies the rest", EXIT_INTERRUPTED)
    state.console.print("caught up")


@app.command("run")
def run(ctx: typer.Context, names: NameArg = None, batch_size: BatchOpt = None) -> None:
    """Follow the log for the async projections (one active runner each) and the hash
    chain's sealer, until interrupted."""
    from akashone_es import audit as chain  # noqa: PLC0415
    from akashone_es.persistence.roles import app_dsn  # noqa: PLC0415
    from projections.runner import Runner  # noqa: PLC0415

    state: State = ctx.obj
    with state.storage() as storage:
        runner = Runner(app_dsn(storage.dsn, storage.settings),
                        _select(storage, names, "async"), storage.reader,
                        batch_size=batch_size or storage.settings.batch_size,
                        follow=chain.seal)
        # a service manager stops it with SIGTERM: finish the batch in hand, then exit 0
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        try:
            runner.run()
        except KeyboardInterrupt:
            runner.stop()


@app.command("rebuild")
def rebuild(ctx: typer.Context, names: NameArg = None, batch_size: BatchOpt = None) -> None:
    """Replay the log into shadow tables and swap them in atomically."""
    from projections.rebuild import rebuild as rebuild_projection  # noqa: PLC0415

    state: State = ctx.obj
    stopped: list[ProjectionError] = []
    rebuilt: list[str] = []
    current = None
    try:
        with state.storage() as storage:
            chosen = _select(storage, names)
            with _bars(state) as bar:
                for projection in chosen:
                    current = projection.name
                    try:
                        position = rebuild_projection(storage.dsn, type(projection),
                                                      storage.reader,
                                                      batch_size=batch_size or 5000,
                                                      progress=bar)
                    except ProjectionError as exc:  # the others are still worth rebuilding
                        stopped.append(exc)
                        continue
                    rebuilt.append(projection.name)
                    state.console.print(f"rebuilt {projection.name} to position "
                                        f"{position.position}"
                                        + ("" if bar.replayed(projection.name)
                                           else " (no events of its own to replay)"))
            if stopped:
                raise stopped[0]
    except KeyboardInterrupt:  # Ctrl-C: the swap is one transaction, after the replay
        if current is None:  # while the storage opened: nothing was replayed yet
            fail("interrupted before any rebuild began: every live table is unchanged",
                 EXIT_INTERRUPTED)
        done = f"; rebuilt before it: {', '.join(rebuilt)}" if rebuilt else ""
        fail(f"interrupted: the rebuild of {current} was abandoned and its live tables are "
             f"unchanged{done}", EXIT_INTERRUPTED)


@app.command("verify")
def verify(ctx: typer.Context, names: NameArg = None) -> None:
    """Replay into shadow tables and compare content checksums with the live tables; check
    that every latest snapshot equals a replay of its events. Async projections are caught
    up first (a replay decrypts with today's keys: one behind an erasure would differ)."""
    import psycopg  # noqa: PLC0415

    from akashone_es.persistence.snapshots import check_snapshots  # noqa: PLC0415
    from projections.rebuild import verify as verify_projection  # noqa: PLC0415
    from projections.runner import catch_up  # noqa: PLC0415

    state: State = ctx.obj
    failed = False
    with state.storage() as storage:
        for projection in _select(storage, names):
            if projection.mode == "async":
                with psycopg.connect(storage.dsn, autocommit=True) as conn, \
                        suppress(ProjectionError):  # a stop: reported below
                    catch_up(conn, projection, storage.reader)
            result = verify_projection(storage.dsn, type(projection), storage.reader)
            for live, replayed in zip(result.live, result.replayed, strict=True):
                same = live == replayed
                failed |= not same
                mark = "[green]ok[/green]" if same else "[red]DIFFERS[/red]"
                state.console.print(
                    f"{projection.name}.{live.table}: {mark} rows={live.rows}"
                    f" live={live.checksum[:12]} replayed={replayed.checksum[:12]}"
                    f" (position {result.position})", markup=True)
            if result.problem is not None:
                failed = True
                typer.echo(f"{projection.name}: NOT OK {result.problem}")
        # loading trusts the latest snapshot: one that the events do not produce is reported
        mismatches = check_snapshots(storage)
        for mismatch in mismatches:
            typer.echo(f"snapshots: NOT OK {mismatch}")
        if not mismatches:
            state.console.print("snapshots: [green]ok[/green] (each latest snapshot equals a "
                                "replay of its events)", markup=True)
        failed |= bool(mismatches)
    if failed:
        raise typer.Exit(1)


def _position(value: int) -> int:
    """``quarantine POSITION``: a log position (a bigint notification id)."""
    if not 1 <= value <= POSITION_MAX:
        raise typer.BadParameter(f"{value} is not a log position (a whole number from 1)")
    return value


def _reason(value: str) -> str:
    """``quarantine --reason``: as long as the recorded reason may be."""
    if not 3 <= len(value.strip()) <= 500:
        raise typer.BadParameter("say why, in 3 to 500 characters")
    return value


def _operator(value: str | None) -> str | None:
    """``quarantine --operator``: as long as the recorded name may be."""
    if value is not None and len(value) > 100:
        raise typer.BadParameter("a name of at most 100 characters")
    return value


@app.command("quarantine")
def quarantine(
    ctx: typer.Context,
    projection: Annotated[str, typer.Argument(help="the projection that stopped")],
    position: Annotated[int, typer.Argument(help="the log position it stopped at",
                                            callback=_position)],
    reason: Annotated[str, typer.Option(help="why skipping this event is right (recorded; "
                                             "3 to 500 characters)", callback=_reason)],
    operator: Annotated[str | None, typer.Option(
        help="who decides (recorded; default: the login name)", callback=_operator)] = None,
) -> None:
    """Make a projection skip the event at a log position, recorded as an event in the log.

    Only the event a projection is recorded as stopped at (``status`` shows it as STOPPED)
    may be quarantined; any other position is refused. Afterwards ``catch-up`` (async) or
    ``rebuild`` (inline) goes past it, and rebuilds skip it too. While an inline projection
    is stopped, writes are refused until that rebuild.
    """
    from akashone_es.storage.quarantine import quarantine_position  # noqa: PLC0415

    state: State = ctx.obj
    with state.storage("projections quarantine") as storage:
        known = sorted(p.name for p in storage.projections)
        if projection not in known:
            raise typer.BadParameter(f"unknown projection {projection!r}; known: "
                                     f"{', '.join(known)}", param_hint="'projection'")
        at = quarantine_position(storage, projection=projection, position=position,
                                 reason=reason, operator=operator or _login())
    state.console.print(f"quarantined position {position} for {projection} (recorded at "
                        f"log position {at})")


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (a bare container)
        return None
