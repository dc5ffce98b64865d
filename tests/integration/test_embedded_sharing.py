"""The embedded server stays up while any storage, in this process or another, uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from akashone_es import Settings, open_storage
from akashone_es.storage import Storage
from tests.conftest import TEST_SETTINGS, private_data_dir

ROOT = Path(__file__).resolve().parents[2]

# A second process: opens storage on the data dir, says "ready", waits for a line on stdin,
# then runs a command and a read and prints the result.
CHILD = """
import sys
from akashone_es import Settings, open_storage
settings = Settings(data_dir=sys.argv[1], bcrypt_rounds=4, secret_key=sys.argv[2])
storage = open_storage(settings)
print("ready", flush=True)
sys.stdin.readline()
try:
    with storage.acting_as(system="tests"):
        name = sys.argv[3]
        user = storage.create_user({"username": name, "email": name + "@example.in",
                                    "password": "password-c1"})
        print("ok", storage.get_user(user.id).username, flush=True)
finally:
    storage.close()
"""


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """One embedded server's home for the module (outside pytest's temp dir)."""
    with private_data_dir("sharing") as path:
        yield path


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings that start the embedded server, whatever server the suite runs on."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AKASHONE_DATABASE_URL", raising=False)
    return Settings(**{**TEST_SETTINGS, "data_dir": data_dir})  # type: ignore[arg-type]


def works(storage: Storage) -> str:
    """Run a command and a read; the username read back."""
    name = f"u{uuid.uuid4().hex[:10]}"
    with storage.acting_as(system="tests"):
        user = storage.create_user({"username": name, "email": f"{name}@example.in",
                                    "password": "password-w1"})
        found = storage.get_user(user.id)
    assert found is not None
    return found.username


def answers(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


def start_child(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    name = f"c{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "AKASHONE_DATABASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), str(TEST_SETTINGS["secret_key"]), name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert child.stdout is not None
    assert "ready" == child.stdout.readline().strip()
    return child, name


def finish_child(child: subprocess.Popen[str]) -> str:
    out, _ = child.communicate("go\n", timeout=120)
    assert 0 == child.returncode
    return out.strip()


class TestOneProcess:
    def test_closing_one_storage_keeps_the_other_working(self, settings: Settings) -> None:
        """Two storages on one server: closing the first leaves the second working, and
        closing the last stops the server."""
        first = open_storage(settings)
        second = open_storage(settings)
        dsn = second.dsn
        first.close()
        try:
            assert works(second).startswith("u")
        finally:
            second.close()
        assert not answers(dsn)

    def test_reopening_after_a_close_claims_the_server_again(self, settings: Settings) -> None:
        """Open, close, open again: the new storage works, and closing it stops the server."""
        open_storage(settings).close()
        again = open_storage(settings)
        dsn = again.dsn
        try:
            assert works(again).startswith("u")
        finally:
            again.close()
        assert not answers(dsn)


class TestTwoProcesses:
    def test_other_process_keeps_working_when_this_one_closes(self, settings: Settings,
                                                             data_dir: Path) -> None:
        """A second process opens storage on the same data dir; the first closes; the second
        still runs a command."""
        mine = open_storage(settings)
        child, name = start_child(data_dir)
        mine.close()
        assert f"ok {name}" == finish_child(child)

    def test_this_process_keeps_working_when_the_other_closes(self, settings: Settings,
                                                              data_dir: Path) -> None:
        """This process closes and reopens (a new claim), another process comes and goes:
        this process's storage still works."""
        open_storage(settings).close()
        mine = open_storage(settings)
        try:
            child, name = start_child(data_dir)
            assert f"ok {name}" == finish_child(child)
            assert works(mine).startswith("u")
        finally:
            mine.close()
