"""``projections verify`` reports a snapshot that the events do not produce."""

from __future__ import annotations

from akashone_es import Settings, open_storage
from tests.cli.conftest import Cli
from tests.conftest import TEST_SETTINGS
from tests.integration.test_snapshot_guard import COUPON, forge_snapshot


class TestVerifySnapshots:
    def test_honest_log_verifies_snapshots_ok(self, cli: Cli) -> None:
        """On an untouched database verify passes and says the snapshots were checked."""
        assert 0 == cli("init").returncode
        done = cli("projections", "verify")
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "snapshots: ok" in done.stdout

    def test_forged_coupon_snapshot_fails_verify(self, cli: Cli, dsn: str) -> None:
        """A snapshot written behind the API that resets a max_uses=1 coupon's count makes
        verify exit 1 naming the coupon and its version."""
        storage = open_storage(Settings(**TEST_SETTINGS), dsn=dsn)  # type: ignore[arg-type]
        try:
            with storage.acting_as(system="tests"):
                coupon = storage.create_discount_coupon(COUPON)
                storage.increment_coupon_usage(coupon.id)
                forge_snapshot(storage, coupon.id, times_used=0)
        finally:
            storage.close()
        done = cli("projections", "verify")
        assert 1 == done.returncode
        assert f"snapshots: NOT OK snapshot of {coupon.id} at version 2" in done.stdout
