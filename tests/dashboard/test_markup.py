"""User input is shown as literal text: links, images and directives do not render."""

from __future__ import annotations

import markdown_it

from dashboard.markup import literal


def _html(md: str) -> str:
    return markdown_it.MarkdownIt("commonmark").render(md)


def test_links_and_images_render_as_their_own_text():
    for evil in ("[Session expired – sign in](https://evil.example/login)", "![x](http://host/beacon.png)",
                 "<img src=x onerror=alert(1)>", "**bold** _it_ `code`"):
        html = _html(f"Ignored a filter: {literal(evil)}")
        assert "<a " not in html and "<img" not in html and "<strong>" not in html and "<code>" not in html
        # what the reader sees is the input itself (HTML-escaped by the renderer)
        assert evil.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in html.replace("&quot;", '"')


def test_long_values_are_cut_and_newlines_cannot_start_a_block():
    out = literal("a" * 5000)
    assert out == "a" * 120 + "…"
    assert "\n" not in literal("x\n# heading\n- item")
    assert literal(":red[alarm] :material/lock:") == "\\:red\\[alarm\\] \\:material\\/lock\\:"
