import sys
from pathlib import Path

import pytest

# Shared test helpers live in tests/tests_support.py (test folders have no __init__.py).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """One data root per test session, so the embedded datasets are generated once and shared."""
    return tmp_path_factory.mktemp("data")
