import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WASM, main_stack  # noqa: E402


def pytest_sessionstart(session):
    if not WASM.exists():
        raise pytest.UsageError(f"{WASM} is missing: run `make wasm` (or `make test`) first")


@pytest.fixture(scope="module")
def stack():
    yield from main_stack()
