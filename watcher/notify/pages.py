"""HTML pages rendered with Jinja2, escaping everything: the web dashboard's renderer.

Jinja2 has one owner in this package (``notify``, see docs/architecture.md), so the web face
(:mod:`watcher.faces.web`) renders its pages through this small helper instead of importing
Jinja2 itself. Autoescape is on for every template, whatever its name, and undefined names are
errors: a value interpolated into a page is always text, never markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2


class PageRenderer:
    """Renders the templates of one folder to HTML strings (autoescaped)."""

    def __init__(self, folder: Path) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(name).render(context)
