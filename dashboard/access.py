"""Who may see participant-level views: the dashboard's one access policy, asked by every page.

Participant-level means anything that shows or hands out one participant's values: the Subject page,
the Export page's rows, the Jobs page's queue (eids, file names) and upload, scatter points, box-plot
outliers, and any group of fewer than :data:`store.export.SMALL_COUNT_THRESHOLD` participants.

- Login configured (an ``[auth]`` section in ``.streamlit/secrets.toml``, used by ``st.login``): a
  signed-in user sees them, if on the allow-list ``MSMV_ALLOWED_USERS`` when that is set; anyone else
  gets aggregate views only.
- No login configured: the dashboard is a single-user tool and shows everything while it is bound to
  a loopback address. Bound to any other address (or to all of them) it serves whoever reaches the
  port, so it falls back to aggregate views unless ``MSMV_ALLOW_UNAUTHENTICATED_REMOTE`` says so.

Aggregate views: no eid, no per-participant point, no downloadable rows, and the cohort a page
computes on holds only sex x age-stratum cells of at least the threshold (:func:`small_cells_dropped`),
so every table or chart grouped by sex and/or age stratum shows groups at or above it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from store import settings
from store.export import SMALL_COUNT_THRESHOLD

ALLOW_LIST_SETTING = "MSMV_ALLOWED_USERS"
REMOTE_SETTING = "MSMV_ALLOW_UNAUTHENTICATED_REMOTE"
# The cells an anonymous cohort is cut into: every page groups by these (Table 1, Figure 4, trends).
CELL_COLUMNS: tuple[str, ...] = ("sex", "age_stratum")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(address: str | None) -> bool:
    """True when a server bound to ``address`` is reachable from this machine only.

    Streamlit binds every interface when ``server.address`` is unset (``None`` or empty); a host name
    other than localhost may resolve to anything, so it counts as remote.
    """
    if not address or not address.strip():
        return False
    text = address.strip().strip("[]").lower()
    if text in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def allow_list(raw: str) -> tuple[str, ...]:
    """The entries of an allow-list setting: e-mail addresses or domains, comma or space separated,
    lower-cased, a leading ``@`` of a domain dropped."""
    return tuple(e.lower().lstrip("@") for e in re.split(r"[,\s]+", raw) if e.strip(" @"))


def on_allow_list(email: str | None, entries: tuple[str, ...]) -> bool:
    """True when ``entries`` is empty (no allow-list), or names ``email`` or its domain exactly."""
    if not entries:
        return True
    if not email or "@" not in email:
        return False
    address = email.strip().lower()
    return address in entries or address.rsplit("@", 1)[1] in entries


@dataclass(frozen=True)
class Access:
    """What the visitor of this session may see, and why."""

    auth_configured: bool
    signed_in: bool
    allowed_user: bool = True  # the signed-in account passes the allow-list (or there is none)
    address: str | None = "127.0.0.1"  # Streamlit's server.address
    remote_allowed: bool = False  # MSMV_ALLOW_UNAUTHENTICATED_REMOTE

    @property
    def remote(self) -> bool:
        return not is_loopback(self.address)

    @property
    def participant_level(self) -> bool:
        """Participant-level views: a signed-in, allowed user, or no login on loopback (or allowed)."""
        if self.auth_configured:
            return self.signed_in and self.allowed_user
        return not self.remote or self.remote_allowed

    @property
    def min_group_size(self) -> int:
        """Smallest group a view may show: 1 with participant-level access, else the small-count threshold."""
        return 1 if self.participant_level else SMALL_COUNT_THRESHOLD

    @property
    def can_sign_in(self) -> bool:
        return self.auth_configured and not self.signed_in

    def reason(self) -> str:
        """Why participant-level views are off (empty when they are on)."""
        if self.participant_level:
            return ""
        if self.can_sign_in:
            return "You are not signed in."
        if self.auth_configured:
            return f"The signed-in account is not on this dashboard's allow-list (`{ALLOW_LIST_SETTING}`)."
        where = f"`{self.address}`" if self.address else "every network interface"
        return (f"This dashboard is served on {where} without login configured (no `[auth]` section in "
                "`.streamlit/secrets.toml`), so anyone who reaches it is treated as anonymous. Configure "
                f"login, or set `{REMOTE_SETTING}=true` to show participant-level views to everyone.")


def auth_configured() -> bool:
    """True when ``st.login`` can work: secrets hold an ``[auth]`` section."""
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all (StreamlitSecretNotFoundError subclasses it)
        return False


def current_access() -> Access:
    """The policy's answer for the visitor of the running session."""
    configured = auth_configured()
    signed_in = configured and bool(getattr(st.user, "is_logged_in", False))
    email = getattr(st.user, "email", None) if signed_in else None
    return Access(
        auth_configured=configured,
        signed_in=signed_in,
        allowed_user=on_allow_list(email if isinstance(email, str) else None,
                                   allow_list(str(settings.get(ALLOW_LIST_SETTING)))),
        address=st.get_option("server.address"),
        remote_allowed=bool(settings.get(REMOTE_SETTING)),
    )


def small_cells_dropped(df: pd.DataFrame, min_size: int) -> pd.DataFrame:
    """``df`` without the participants of any sex x age-stratum cell smaller than ``min_size``.

    A missing sex or stratum is a cell of its own. Groupings by sex, by stratum or by both are unions
    of whole cells, so none of them can show fewer than ``min_size`` participants afterwards.
    """
    if min_size <= 1 or df.empty:
        return df
    keys = [c for c in CELL_COLUMNS if c in df.columns]
    if len(keys) < len(CELL_COLUMNS):
        raise ValueError(f"an aggregate view needs the columns {list(CELL_COLUMNS)}; found {list(df.columns)}")
    sizes = df.groupby(keys, dropna=False, observed=True)[keys[0]].transform("size")
    return df[sizes.to_numpy() >= min_size]


def sign_in_prompt(what: str, access: Access | None = None, *, key: str = "access_login") -> None:
    """Say what unlocks ``what`` where the view would be: a login button when login is configured,
    a log-out button for an account off the allow-list, else why the dashboard holds it back."""
    access = access or current_access()
    if access.can_sign_in:
        st.info(f"Sign in to {what}.", icon=":material/lock:")
        st.button("Log in", on_click=st.login, icon=":material/login:", key=key)
    elif access.auth_configured:
        st.info(f"{access.reason()} Sign in with another account to {what}.", icon=":material/lock:")
        st.button("Log out", on_click=st.logout, icon=":material/logout:", key=key)
    else:
        st.info(f"Participant-level views are off here, so you cannot {what}. {access.reason()}",
                icon=":material/lock:")


def aggregate_note(access: Access) -> str:
    """One line for a cohort page telling an anonymous visitor what the views leave out."""
    return (f"Aggregate view: sex × age-stratum groups of fewer than {access.min_group_size} participants are "
            f"left out and no individual values are drawn. {access.reason()}")
