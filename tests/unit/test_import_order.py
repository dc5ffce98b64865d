"""Each entry point of the package imports on its own, in a fresh interpreter.

A test process has long imported the storage facade, so an import cycle that only bites when
a module is imported first (``akashone-es resources`` once imported the resource kinds before
the facade, whose access policy imports them) never shows in-process.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import akashone_es.cli
import akashone_es.resources

#: every CLI command module (the CLI imports each lazily, as its command runs), the resource
#: kinds, and the leaf modules that other packages import
MODULES = sorted({
    *(f"akashone_es.cli.{m.name}" for m in pkgutil.iter_modules(akashone_es.cli.__path__)
      if m.name != "__main__"),  # it runs the command line
    *(f"akashone_es.resources.{m.name}"
      for m in pkgutil.iter_modules(akashone_es.resources.__path__)),
    "akashone_es.resources", "akashone_es.storage.limits", "akashone_es.storage.inputs",
    "akashone_es.storage.policy", "akashone_es.storage", "projections.billing",
})


def test_every_entry_point_imports_first() -> None:
    running = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)
               for name in MODULES}
    failed = {}
    for name, process in running.items():
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            failed[name] = (stderr.strip().splitlines() or [f"exit {process.returncode}"])[-1]
    assert not failed, failed


def test_the_storage_package_loads_its_facade_only_when_asked() -> None:
    """Importing a leaf module of ``akashone_es.storage`` leaves the facade unloaded."""
    code = ("import sys, akashone_es.storage.limits;"
            " assert 'akashone_es.storage.facade' not in sys.modules;"
            " from akashone_es.storage import Storage;"
            " assert Storage.__module__ == 'akashone_es.storage.facade'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
