"""The package ships `py.typed`: its annotations must hold under
``mypy --strict``, or type-checked apps would be told wrong things."""

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "taskhost_client"


def test_the_package_type_checks_strictly() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", "/dev/null", str(PACKAGE)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (PACKAGE / "py.typed").exists()
