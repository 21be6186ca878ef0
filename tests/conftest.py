"""Shared fixtures: the real data directory (skips without LAMP_DATA_DIR), ICEWS14, a temporary cache, one
fitted ICEWS14 pipeline and its saved bundle."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lamp.data.eventlog import EventLog

if TYPE_CHECKING:
    from lamp.pipeline.predictor import Pipeline


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets folder from ``$LAMP_DATA_DIR``; tests that need it skip when it is unset."""
    env = os.environ.get("LAMP_DATA_DIR")
    if not env:
        pytest.skip("LAMP_DATA_DIR is not set: point it at the datasets folder (e.g. ../shared/datasets) "
                    "to run the tests on real data")
    path = Path(env).expanduser()
    if not path.is_dir():
        pytest.skip(f"LAMP_DATA_DIR={env} is not a folder")
    return path


@pytest.fixture(scope="session")
def icews14(data_dir: Path) -> EventLog:
    """ICEWS14 read from the source files (no cache), with its CAMEO mapping."""
    from lamp.data.load import load_dataset

    if not (data_dir / "icews14" / "train.txt").is_file():
        pytest.skip(f"{data_dir}/icews14 is missing")
    return load_dataset("icews14", data_root=data_dir, use_cache=False, download=False)


@pytest.fixture()
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache directory for this test (``LAMP_CACHE_DIR``)."""
    cache = tmp_path / "lamp-cache"
    cache.mkdir()
    monkeypatch.setenv("LAMP_CACHE_DIR", str(cache))
    return cache


_CHECK_JS = """<script>
window.addEventListener("load", () => {
  const out = {
    title: document.title,
    headings: [...document.querySelectorAll("h1, h2")].map(h => h.textContent),
    images: [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight,
                                             shown: i.getBoundingClientRect().width})),
    tables: [...document.querySelectorAll("table")].map(t => ({rows: t.rows.length,
                                                              cells: t.rows.length ? t.rows[0].cells.length : 0,
                                                              height: t.getBoundingClientRect().height})),
    resources: performance.getEntriesByType("resource").map(e => e.name),
  };
  const pre = document.createElement("pre");
  pre.id = "lamp-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture(scope="session")
def chromium_render(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Load an HTML file in headless Chromium (no network, no server) and return what rendered: the
    title, h1/h2 headings, each image's natural and shown size, each table's rows, cells and height, and
    every resource the page fetched. Skips when Chromium is missing (``bash .ci/setup`` installs it)."""
    import html as html_lib
    import json
    import re
    import shutil
    import subprocess

    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("headless Chromium is not installed (bash .ci/setup installs the Debian package chromium)")

    def render(page: Path) -> dict:  # type: ignore[type-arg]
        work = tmp_path_factory.mktemp("chromium")
        probe = work / page.name  # the page itself plus a script that reports what rendered
        text = page.read_text(encoding="utf-8")
        assert text.count("</body>") == 1, f"{page} has no single </body>"
        probe.write_text(text.replace("</body>", _CHECK_JS + "</body>"), encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,2000",
               "--dump-dom", probe.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        found = re.search(r'<pre id="lamp-check">(.*?)</pre>', proc.stdout, re.S)
        assert found, f"Chromium did not render {page} (exit {proc.returncode}): {proc.stderr[-2000:]}"
        return json.loads(html_lib.unescape(found.group(1)))

    return render


def terminal_screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text`` was written to it, scrolled-off ones included: \\r returns
    to the line's start, \\n moves down, ESC[A (how tqdm reaches a nested bar's line) moves up, later
    characters overwrite earlier ones; other escape sequences are dropped."""
    rows: list[list[str]] = [[]]
    r = c = 0
    for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\r\n\x1b]", text):
        if token == "\r":
            c = 0
        elif token == "\n":
            r, c = r + 1, 0
        elif token == "\x1b[A":
            r = max(0, r - 1)
        elif not token.startswith("\x1b"):
            while len(rows) <= r:
                rows.append([])
            row = rows[r]
            row.extend(" " * (c + 1 - len(row)))
            row[c] = token
            c += 1
    lines = ["".join(row).rstrip() for row in rows]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pytest.fixture()
def screen() -> Callable[[str], list[str]]:
    """:func:`terminal_screen`: what a terminal shows after some output."""
    return terminal_screen


@pytest.fixture(scope="session")
def icews14_pipeline(icews14: EventLog) -> Pipeline:
    """One lamp.Pipeline fitted on ICEWS14 train + valid (events up to 2014-11-30: recurrency, mined rules, fuzzy
    retrieval, a 2-epoch energy ranker on 30 valid queries), shared by the tests of the pipeline and the server.
    Never change it: a test that observes events works on ``dataclasses.replace(icews14_pipeline)`` (the same
    fitted components, its own history)."""
    import lamp

    return lamp.Pipeline.fit(icews14.head(icews14.split_range("test")[0]), abducer="rules", retriever="fuzzy",
                             n_valid_queries=30, ranker={"epochs": 2})


@pytest.fixture(scope="session")
def icews14_bundle(icews14_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`icews14_pipeline` saved (what ``lamp serve`` reads)."""
    return icews14_pipeline.save(tmp_path_factory.mktemp("bundle") / "icews14.lamp")
