"""A user file that fails on import (the CLI must exit 2 and show where)."""

import padiff_no_such_module_for_tests  # noqa: F401


def make_pair():
    return None
