"""Screenshot a static HTML page with headless Chromium, cropped to the page's height.

Shared by ``scripts/render-slack-message`` and ``scripts/render-panel``. Chromium
(Debian: ``apt-get install -y chromium``; or ``$CHROMIUM``) is needed only to
regenerate the README images, never by the tests or CI. Two runs: ``--dump-dom`` to
measure the laid-out height, then ``--screenshot`` at exactly that size.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["ChromiumError", "chromium", "screenshot"]

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]
# a script appended to the page: writes the laid-out height where --dump-dom shows it
_MEASURE = (
    "<script>document.documentElement.setAttribute('data-height',"
    "Math.ceil(document.documentElement.getBoundingClientRect().height));</script>"
)


class ChromiumError(RuntimeError):
    """Chromium is missing or did not produce what was asked."""


def chromium() -> str:
    """The Chromium binary: ``$CHROMIUM``, else chromium / chromium-browser / google-chrome."""
    env = os.environ.get("CHROMIUM")
    if env:
        if not Path(env).exists() and not shutil.which(env):
            raise ChromiumError(f"CHROMIUM={env!r}: no such program")
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumError(
        "Chromium not found: apt-get install -y chromium (Debian), or set $CHROMIUM. "
        "It is only needed to regenerate the README images."
    )


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="gapmon-chromium-") as profile:
        cmd = [chromium(), *_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ChromiumError(f"chromium did not finish in {timeout:.0f}s") from None


def screenshot(
    html: str, out: Path, width: int, scale: float = 2.0, timeout: float = 60.0
) -> tuple[int, int]:
    """Render ``html`` at ``width`` CSS px, save a PNG of the whole page; (width, height)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gapmon-shot-") as d:
        page = Path(d) / "page.html"
        page.write_text(html.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
        url = page.as_uri()
        dom = _run([f"--window-size={width},2000", "--dump-dom", url], timeout)
        m = re.search(r'data-height="(\d+)"', dom.stdout)
        if dom.returncode != 0 or not m:
            raise ChromiumError(
                f"chromium --dump-dom failed (exit {dom.returncode}): {dom.stderr.strip()[-500:]}"
            )
        height = int(m.group(1))
        page.write_text(html, encoding="utf-8")
        tmp_png = Path(d) / "shot.png"
        shot = _run(
            [
                f"--window-size={width},{height}",
                f"--force-device-scale-factor={scale:g}",
                f"--screenshot={tmp_png}",
                url,
            ],
            timeout,
        )
        if shot.returncode != 0 or not tmp_png.exists() or tmp_png.stat().st_size == 0:
            raise ChromiumError(
                f"chromium --screenshot failed (exit {shot.returncode}): "
                f"{shot.stderr.strip()[-500:]}"
            )
        shutil.move(str(tmp_png), out)
    return width, height
