"""What a user sees from ``lamp run``: a short console (under the main job's 60-line budget) with live
progress bars in a terminal, lamp's DEBUG lines only with ``-v`` / ``hydra.verbose=lamp``."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lamp.cli.logs import ConsoleFormatter, split_verbose

LINE_BUDGET = 60  # the main job's; a smoke run prints the same parts with fewer queries


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("lamp.rank.ranker", level, __file__, 1, msg, None, None)


def test_console_lines_are_bare_info_and_prefixed_otherwise() -> None:
    fmt = ConsoleFormatter()
    assert fmt.format(_record(logging.INFO, "icews14: 90,730 events")) == "icews14: 90,730 events"
    assert fmt.format(_record(logging.WARNING, "budget exhausted")) == "warning: budget exhausted"
    assert fmt.format(_record(logging.DEBUG, "ranker epoch 1")) == "debug lamp.rank.ranker: ranker epoch 1"


def test_verbose_flag_is_taken_out_of_the_overrides() -> None:
    assert split_verbose(["run", "-v", "experiment=smoke"]) == (["run", "experiment=smoke"], True)
    assert split_verbose(["run", "experiment=smoke"]) == (["run", "experiment=smoke"], False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lamp-cache")


def _env(cache: Path) -> dict[str, str]:
    repo = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "LAMP_CACHE_DIR": str(cache), "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _lamp(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "lamp.cli.main", *args], capture_output=True, text=True,
                          env=_env(cache), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _in_terminal(cache: Path, *args: str, cols: int = 120) -> str:
    """Run ``lamp`` with stdout and stderr on a pseudo-terminal of ``cols`` columns; all it wrote."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "lamp.cli.main", *args], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=_env(cache), close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=900) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.slow
@pytest.mark.real_llm
def test_a_smoke_run_in_a_terminal_prints_under_the_line_budget(data_dir: Path, cache: Path, tmp_path: Path,
                                                                screen: Callable[[str], list[str]]) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (bash .ci/setup builds it)")
    out = _in_terminal(cache, "run", "experiment=smoke", "progress=true", f"hydra.run.dir={tmp_path / 'run'}")
    visible = [line.strip() for line in screen(out)]  # every line the terminal showed, scrolled-off ones too
    assert len(visible) < LINE_BUDGET, "\n".join(visible)
    assert "abduce[llm]: LLM (local)" in out  # the LLM stage's live bar (calls, cache hits, tokens/s)
    assert any(v.startswith("| method") for v in visible) and any(v.startswith("cost: ") for v in visible)
    assert any(v.startswith(("Best on valid: ", "Shown: ")) and "paired bootstrap" in v for v in visible)
    assert f"report: {tmp_path / 'run' / 'report.html'}" in visible
    noisy = [v for v in visible if v.startswith(("debug ", "warning:")) or re.search(r"\[(INFO|DEBUG)\]", v)]
    assert not noisy, noisy  # no DEBUG line, no other library's INFO line, no warning a user cannot act on


@pytest.mark.slow
def test_debug_lines_only_with_verbose(data_dir: Path, cache: Path, tmp_path: Path) -> None:
    small = ["experiment=smoke", "ranker=energy", "llm=none", "retriever=fuzzy", "ablations=[]", "n_explanations=0"]
    quiet = _lamp(cache, "run", *small, f"hydra.run.dir={tmp_path / 'quiet'}")
    assert "ranker epoch" not in quiet.stderr and not re.search(r"^debug ", quiet.stderr, re.M), quiet.stderr
    assert "ranker epoch" not in (tmp_path / "quiet" / "run.log").read_text()
    # another epoch count retrains the ranker (the other stages are reused), now with -v
    loud = _lamp(cache, "run", "-v", *small, "ranker.epochs=2", f"hydra.run.dir={tmp_path / 'loud'}")
    assert re.search(r"^debug lamp\.nn\.training: ranker epoch 1: ", loud.stderr, re.M), loud.stderr[-2000:]
    assert "ranker epoch 2" in (tmp_path / "loud" / "run.log").read_text()
    hydra = _lamp(cache, "run", *small, "ranker.epochs=4", "hydra.verbose=lamp", f"hydra.run.dir={tmp_path / 'hv'}")
    assert re.search(r"^debug lamp\.nn\.training: ranker epoch 4: ", hydra.stderr, re.M), hydra.stderr[-2000:]
    assert "| method" in quiet.stdout and "| method" not in quiet.stderr  # results on stdout, logs on stderr
