import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WASM, Stack  # noqa: E402


def pytest_sessionstart(session):
    if not WASM.exists():
        raise pytest.UsageError(f"{WASM} is missing: run `make wasm` (or `make test`) first")


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    try:
        s.creds = s.moto.create_user_key("app-user")
        s.grant = "grant-main-1"
        s.bao.put_grant(s.grant, s.creds)
        yield s
    finally:
        s.stop()
        s.cleanup()
