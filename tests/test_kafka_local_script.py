"""scripts/kafka-local's cluster ids: the form kafka-storage format accepts, never an option.

CI once failed because an id drawn as base64 began with '-' (1 time in 64) and the
storage tool's argument parser took it for an option. No broker is needed here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kafka-local"
DRAWS = 400  # without the re-draw, P(no id starts with '-') = (63/64)^400 < 0.2%


def test_cluster_ids_are_22_url_safe_characters_and_never_start_with_a_dash() -> None:
    # One bash process runs the command DRAWS times, so the test stays under a few seconds.
    loop = f'for _ in $(seq {DRAWS}); do "{SCRIPT}" cluster-id; done'
    out = subprocess.run(["bash", "-c", loop], capture_output=True, text=True, check=True)
    ids = out.stdout.split()
    assert len(ids) == DRAWS
    bad = [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i)]
    assert bad == []
    assert len(set(ids)) == DRAWS  # random, not a constant


def test_cluster_id_takes_no_arguments() -> None:
    out = subprocess.run([str(SCRIPT), "cluster-id", "x"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "cluster-id takes no arguments" in out.stderr
