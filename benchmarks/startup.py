"""Start-up: wall time of ``cse --help`` and ``python -c "import cse"`` in fresh subprocesses.

The reference is ``python -c pass`` (the interpreter alone), measured interleaved in the same run.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _cse_exe() -> str:
    beside = Path(sys.executable).parent / "cse"
    return str(beside) if beside.exists() else (shutil.which("cse") or "cse")


def bench_startup(repeat: int) -> list[dict[str, Any]]:
    commands = {
        "python -c pass (reference)": [sys.executable, "-c", "pass"],
        'python -c "import cse"': [sys.executable, "-c", "import cse"],
        'python -c "import cse.client"': [sys.executable, "-c", "import cse.client"],
        "cse --help": [_cse_exe(), "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat + 1):  # the first round warms the page cache and is dropped
        for name, argv in commands.items():
            t = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t)
    ref = statistics.median(times["python -c pass (reference)"][1:])
    rows = []
    for name, t in times.items():
        med = statistics.median(t[1:])
        rows.append({"command": name, "seconds": med, "ratio_to_bare_python": med / ref})
    return rows
