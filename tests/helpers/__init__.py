"""Plain helpers that tests import (fixtures stay in the ``conftest.py`` files; no test imports one)."""
