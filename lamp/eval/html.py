"""A run's report as one self-contained HTML file: the markdown report rendered with its tables, the
plots inlined as base64 data URIs, the style inline. It opens in a browser from disk with no server and
loads nothing from the network.

>>> html = report_html(Path("runs/x/report.md").read_text(), image_dir=Path("runs/x"), title="lamp run")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from lamp.errors import ArtifactError

_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_IMG_SRC = re.compile(r'<img src="([^"]+)"')

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.45; color: #1a1a1a; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 0 0.2rem; border-radius: 3px; font-size: 0.88em; }
img { max-width: 100%; display: block; margin: 0.8rem 0; }
li { margin: 0.15rem 0; }
"""


def _inline(src: str, image_dir: Path) -> str:
    if src.startswith(("data:", "http:", "https:")):
        return src
    path = image_dir / src
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        raise ArtifactError(f"the report refers to image {src!r}, but {path} is not a PNG/SVG/JPEG file; "
                            "rerun the eval stage to write it.")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def report_html(markdown_text: str, *, image_dir: Path, title: str) -> str:
    """``markdown_text`` (CommonMark with pipe tables) as a standalone HTML page; images referenced by a
    relative path are read from ``image_dir`` and embedded."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    body = _IMG_SRC.sub(lambda m: f'<img src="{_inline(html.unescape(m.group(1)), image_dir)}"', body)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")
