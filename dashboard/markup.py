"""User input shown as literal text inside Streamlit's Markdown-rendering messages.

``st.warning``/``st.error``/``st.info`` render Markdown, including links, images (which the browser
fetches), HTML-like tags, colour directives (``:red[...]``) and icon short codes. Any value that came
from a URL, a text box or a file name goes through :func:`literal` before it is put into one.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation; escaping all of it also defuses Streamlit's
# own directives (``:material/...:``, ``:red[...]``) and ``$`` maths.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
DEFAULT_LIMIT = 120  # characters of user input echoed back; enough to recognise it, never a page of it


def literal(value: object, *, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` as text that renders verbatim in Markdown, cut to ``limit`` characters (``…`` marks a cut).

    Newlines become spaces, so the input cannot start a new Markdown block.
    """
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return _PUNCTUATION.sub(r"\\\1", text)
