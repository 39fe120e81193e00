"""What a worker imports before it answers: every CLI command and test pays it at each start."""

from __future__ import annotations

import json
import subprocess
import sys

# Each adds a second or more to every start, and only a few methods need it: import it where used.
HEAVY = ("sklearn", "scipy", "pandas")


def test_the_worker_entry_points_import_no_heavy_library_they_do_not_need() -> None:
    code = (
        "import json, sys\n"
        "import nfhm.rpc.pythonia, nfhm.rpc.serve\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    # A fresh interpreter: this one has imported whatever other tests needed.
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []
