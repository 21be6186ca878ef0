"""Every Python and shell example in README.md runs, as written, on the real data (so the README can never again
show an example that fails).

The README's code blocks are read in order. A block runs unless an HTML comment on the lines just before its
fence says otherwise, with a reason (the comment is visible in the README's source, not on the rendered page):

- ``<!-- no-test: reason -->``: not run (only for what needs an API key or is a whole long run, e.g. the main job
  or the full test suite; the reason says where it is covered instead);
- ``<!-- compose-only: reason -->``: a block of ``lamp run ...`` lines, each a whole run: each line's Hydra config
  (every job of a ``-m`` sweep) is composed and converted to a PipelineConfig, which is everything a run does
  before its first stage;
- ``<!-- expect: REGEX -->`` (any number): the block's output must match each regular expression.

Runnable blocks run one after the other in one temporary folder (a file one writes, the next may read), Python
blocks with this interpreter, shell blocks with ``bash -e -o pipefail``, with ``lamp`` on the PATH and this
checkout first on PYTHONPATH. A process a shell block leaves in the background (``lamp serve ... &``) keeps
running for the blocks after it and is stopped at the end. The README's ports (8000: lamp serve, 6379: the Ray
head) are replaced by free ones.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
NOT_CODE = {"text", "console", "json", "yaml"}  # shown, not run
MARKERS = ("no-test", "compose-only", "expect")
PORTS = ("8000", "6379")  # the README's ports (lamp serve, the Ray head); the test uses free ones


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    markers: tuple[tuple[str, str], ...] = field(default=())  # (marker, text), in order

    def marker(self, name: str) -> str | None:
        return next((text for m, text in self.markers if m == name), None)

    @property
    def expects(self) -> list[str]:
        return [text for m, text in self.markers if m == "expect"]

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of ``text`` with the ``<!-- marker: text -->`` comments on the lines before each."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise AssertionError(f"README.md:{i + 1}: a code block that is never closed")
        markers, k = [], i - 1
        while k >= 0 and (m := re.match(r"^<!--\s*([\w-]+):\s*(.*?)\s*-->\s*$", lines[k])):
            markers.insert(0, (m.group(1), m.group(2)))
            k -= 1
        blocks.append(Block(i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n", tuple(markers)))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_every_code_block_runs_or_says_why_not() -> None:
    assert BLOCKS, "README.md has no code blocks?"
    for b in BLOCKS:
        assert b.lang in RUNNABLE or b.lang in NOT_CODE, (
            f"{b}: give the block a language: one of {sorted(RUNNABLE)} (run by tests/test_readme.py) or "
            f"{sorted(NOT_CODE)} (shown only)")
        for name, text in b.markers:
            assert name in MARKERS, f"{b}: unknown marker <!-- {name}: -->; known: {', '.join(MARKERS)}"
            assert text, f"{b}: <!-- {name}: --> needs a reason (or, for expect, a pattern)"
        skips = [m for m in ("no-test", "compose-only") if b.marker(m) is not None]
        assert len(skips) <= 1, f"{b}: both {' and '.join(skips)}"
        assert not (skips and b.expects), f"{b}: <!-- expect: --> on a block that is not run"
        if b.marker("compose-only") is not None:
            assert all(_is_lamp_run(line) for line in _command_lines(b.code)), \
                f"{b}: compose-only blocks hold `lamp run ...` lines only"
    assert any(b.lang in ("bash", "sh", "shell") and b.marker("no-test") is None for b in BLOCKS)
    assert any(b.lang == "python" and b.marker("no-test") is None for b in BLOCKS)


# -- compose-only blocks ---------------------------------------------------------------------------------
def _command_lines(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _is_lamp_run(line: str) -> bool:
    return shlex.split(line, comments=True)[:2] == ["lamp", "run"]


COMPOSE = [(b, line) for b in BLOCKS if b.marker("compose-only") is not None for line in _command_lines(b.code)]


@pytest.mark.parametrize(("block", "line"), COMPOSE, ids=[" ".join(shlex.split(x, comments=True)) for _, x in COMPOSE])
def test_lamp_run_lines_compose(block: Block, line: str, tmp_path: Path) -> None:
    """What ``lamp run`` does with the line before its first stage: compose, validate, convert (each sweep job)."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from lamp.cli.convert import to_pipeline_config
    from lamp.cli.schemas import register_schemas
    from lamp.pipeline.config import conf_dir

    args = shlex.split(line, comments=True)[2:]
    multirun = any(a in ("-m", "--multirun") for a in args)
    args = [a for a in args if a not in ("-m", "--multirun", "-v", "--verbose")]
    assert not [a for a in args if a.startswith("-")], f"{block}: a flag this test does not know in {line!r}"
    jobs = [args]
    if multirun:
        jobs = [job for batch in BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
                for job in batch]
    register_schemas()
    for job in jobs:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=job)
        to_pipeline_config(cfg, run_dir=tmp_path / "run")


# -- runnable blocks -------------------------------------------------------------------------------------
RUN = [b for b in BLOCKS if b.lang in RUNNABLE and b.marker("no-test") is None and b.marker("compose-only") is None]


@pytest.fixture()
def sessions() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Shell blocks, each its own session (process group): whatever they left running is stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(2)


@pytest.mark.slow
@pytest.mark.network
def test_readme_examples_run_as_written(data_dir: Path, tmp_path: Path,
                                        sessions: list[subprocess.Popen[bytes]]) -> None:
    from lamp.serve.server import free_port

    ports: dict[str, str] = {}
    while len(set(ports.values())) < len(PORTS):
        ports = {p: str(free_port()) for p in PORTS}
    env = {**os.environ, "LAMP_DATA_DIR": str(data_dir),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    for k, b in enumerate(RUN):
        code = re.sub(rf"\b({'|'.join(PORTS)})\b", lambda m: ports[m.group(1)], b.code)
        out = tmp_path / f"block{k}.out"
        if RUNNABLE[b.lang] == "python":
            script = tmp_path / f"block{k}.py"
            script.write_text(code, encoding="utf-8")
            cmd = [sys.executable, str(script)]
        else:
            cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
        with open(out, "wb") as sink:
            proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            sessions.append(proc)
            try:
                rc = proc.wait(timeout=900)
            except subprocess.TimeoutExpired:
                rc = None
        text = out.read_text(errors="replace")
        assert rc == 0, f"{b} {'ran past 900 s' if rc is None else f'exited with {rc}'}; its output:\n{text[-4000:]}"
        for pattern in b.expects:
            assert re.search(pattern, text), f"{b}: output does not match {pattern!r}; its output:\n{text[-4000:]}"
