import sys
from pathlib import Path

# Shared test helpers live in tests/tests_support.py (test folders have no __init__.py).
sys.path.insert(0, str(Path(__file__).parent))
