"""The HTML report: self-contained (images inlined, no external asset) and rendered by headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lamp.errors import ArtifactError
from lamp.eval.html import report_html

REPORT = """# lamp run: toy

**Best on valid: lamp[rules] (mean rank 1.50 vs 2.00 for the base).**

| method | rank ↓ | MRR (95% CI) |
|:--|--:|--:|
| base:toy | 2.00 | 0.500 (0.400–0.600) |
| lamp[rules] | 1.50 | 0.700 (0.600–0.800) |

Event text is escaped: `<b>` and <script>alert(1)</script> & co.

![a plot](plot.png)
"""


def _plot(folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.barh(["base", "lamp"], [2.0, 1.5])
    fig.savefig(folder / "plot.png", dpi=50)
    plt.close(fig)


def test_report_html_is_self_contained(tmp_path: Path) -> None:
    _plot(tmp_path)
    page = report_html(REPORT, image_dir=tmp_path, title="lamp run: toy")
    assert page.startswith("<!DOCTYPE html>") and "<title>lamp run: toy</title>" in page
    assert page.count("<table>") == 1 and page.count("<tr>") == 3
    assert 'src="data:image/png;base64,' in page and "plot.png" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # text from events never becomes markup
    assert "http://" not in page and "https://" not in page


def test_a_missing_plot_is_an_error_not_a_broken_image(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="plot.png"):
        report_html(REPORT, image_dir=tmp_path, title="t")


def test_report_html_renders_in_headless_chromium(tmp_path: Path, chromium_render: Any) -> None:
    _plot(tmp_path)
    out = tmp_path / "report.html"
    out.write_text(report_html(REPORT, image_dir=tmp_path, title="lamp run: toy"), encoding="utf-8")
    seen = chromium_render(out)
    assert seen["title"] == "lamp run: toy" and seen["headings"] == ["lamp run: toy"]
    assert [(t["rows"], t["cells"]) for t in seen["tables"]] == [(3, 3)] and seen["tables"][0]["height"] > 0
    assert [(i["width"], i["height"]) for i in seen["images"]] == [(150, 100)]  # 3 x 2 inches at 50 dpi
    assert seen["images"][0]["shown"] > 0
    assert seen["resources"] == []  # nothing fetched: no server, no network
