"""Who may see participant-level views: the dashboard's one access policy, asked by every page.

Participant-level means anything that shows or hands out one participant's values: the Subject page,
the Export page's row-level download, the Jobs page's upload. When login is configured (an ``[auth]``
section in ``.streamlit/secrets.toml``, used by ``st.login``) those need a signed-in user; without
``[auth]`` the dashboard is a single-user tool bound to 127.0.0.1 and shows everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class Access:
    """What the visitor of this session may see."""

    auth_configured: bool
    signed_in: bool

    @property
    def participant_level(self) -> bool:
        """Participant-level views are shown unless login is configured and nobody is signed in."""
        return not self.auth_configured or self.signed_in


def auth_configured() -> bool:
    """True when ``st.login`` can work: secrets hold an ``[auth]`` section."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all (StreamlitSecretNotFoundError subclasses it)
        return False


def current_access() -> Access:
    """The policy's answer for the visitor of the running session."""
    return Access(auth_configured=auth_configured(), signed_in=bool(getattr(st.user, "is_logged_in", False)))


def sign_in_prompt(what: str, *, key: str = "access_login") -> None:
    """Say that signing in unlocks ``what`` and offer the login button, where the view would be."""
    st.info(f"Sign in to {what}.", icon=":material/lock:")
    st.button("Log in", on_click=st.login, icon=":material/login:", key=key)
