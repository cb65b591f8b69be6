"""docs/gallery.md is what scripts/gallery.py makes of the real renderer's output: a template
change that is not re-rendered into the gallery fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from slack_sdk.models.blocks import Block

ROOT = Path(__file__).resolve().parents[1]


def gallery() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gallery", ROOT / "scripts" / "gallery.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gallery", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_gallery_shows_what_the_renderer_sends_today() -> None:
    g = gallery()
    written = (ROOT / "docs" / "gallery.md").read_text()
    assert written == g.markdown() + "\n", "run: .venv/bin/python scripts/gallery.py --png"
    kinds = set()
    for entry, message in g.rendered():
        kinds.add(entry.kind)
        assert (ROOT / "docs" / "gallery" / f"{entry.slug}.png").is_file(), entry.slug
        assert message["text"]
        for raw in message["blocks"]:
            block = Block.parse(raw)
            assert block is not None
            block.validate_json()
    from watcher.notify.render import TEMPLATES

    assert kinds | {"progress"} == set(TEMPLATES)  # every kind (progress is the card's edit)
    states = {
        e.payload["orchestration"].get("state") for e, _ in g.rendered() if e.kind == "finished"
    }
    assert states == {"succeeded", "failed", "canceled"}
