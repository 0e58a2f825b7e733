"""Every setting MSMV reads, declared once: name, default, help and type, with one accessor.

MSMV's own settings are environment variables (``MSMV_*``). The settings Streamlit owns (the address
the dashboard binds, the upload limit, XSRF protection) are declared here too, but their defaults are
read from ``.streamlit/config.toml``, the file Streamlit itself applies, so the two cannot disagree;
they are overridden the way Streamlit overrides them, by its ``STREAMLIT_*`` variable.

``get(name)`` is the only place that reads these variables. The README's settings section is
:func:`markdown` (``msmv settings --markdown``); ``msmv settings NAME...`` prints current values
(``scripts/run.sh`` uses it for the dashboard's address).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from store.errors import StoreError
from store.vocabulary import SOURCE_KINDS

Value = str | int | float | bool

#: Streamlit's per-project config file, relative to the repository root (``streamlit run`` from the
#: root applies it; ``scripts/run.sh`` and ``dashboard/server.py`` both run from there).
STREAMLIT_CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingError(StoreError, ValueError):
    """A setting is unknown, or its environment variable or config file holds an unusable value."""


@dataclass(frozen=True)
class Setting:
    """One setting. ``default`` is ``None`` for a Streamlit-owned one: it comes from its config file."""

    name: str  # the environment variable, or Streamlit's option key ("server.maxUploadSize")
    default: Value | None
    help: str
    type: type[Value]
    at_least: float | None = None  # smallest accepted value of a number
    items: tuple[str, ...] | None = None  # text: a comma-separated list of some of these, each at most once

    @property
    def streamlit(self) -> bool:
        return not self.name.startswith("MSMV_")

    @property
    def env(self) -> str:
        """The variable that overrides it (Streamlit's own naming for Streamlit's options)."""
        if not self.streamlit:
            return self.name
        snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", self.name.replace(".", "_"))
        return f"STREAMLIT_{snake.upper()}"


SETTINGS: tuple[Setting, ...] = (
    Setting("MSMV_HOME", "data", "data folder: store, snapshots, inbox, artifacts (relative to the working "
            "directory; `msmv --home DIR` sets it for one command)", str),
    Setting("MSMV_STORE_MEMORY", "4GB", "DuckDB memory limit of the single writer (DuckDB's own default is "
            "80 % of RAM, too much beside the workers and the dashboard; big imports spill to disk)", str),
    Setting("MSMV_READER_MEMORY", "2GB", "DuckDB memory limit of each read-only snapshot connection "
            "(several can be open at once)", str),
    Setting("MSMV_QUERY_TIMEOUT_S", 30.0, "seconds a read may run before it is interrupted (DuckDB has no "
            "statement time limit of its own)", float, at_least=0.1),
    Setting("MSMV_KEEP_SNAPSHOTS", 3, "published read snapshots kept; older ones are deleted (a reader "
            "that still has one open keeps reading it)", int, at_least=1),
    Setting("MSMV_PUBLISH_INTERVAL_S", 2.0, "least seconds between two snapshot publishes (each copies the "
            "whole store file: 0.7 s at 500k participants); a skipped publish happens later", float,
            at_least=0.0),
    Setting("MSMV_ENGINE_WORKERS", 1, "default of `msmv engine --workers`: local worker processes",
            int, at_least=1),
    Setting("MSMV_ENGINE_THREADS", 0, "default of `msmv engine --threads`: CPU threads per worker (torch and "
            "ONNX Runtime); 0: each machine's cores shared among the workers running on it",
            int, at_least=0),
    Setting("MSMV_MAX_ATTEMPTS", 3, "default of `msmv engine --max-attempts`: tries per package before "
            "it is marked failed", int, at_least=1),
    Setting("MSMV_ALLOWED_USERS", "", "who may see participant-level dashboard views once login is configured: "
            "e-mail addresses (`ana@uni.example`) or domains (`uni.example`), comma-separated; empty: every "
            "signed-in user", str),
    Setting("MSMV_ALLOW_UNAUTHENTICATED_REMOTE", False, "show participant-level dashboard views when "
            "`server.address` is not loopback and no login is configured (everyone who reaches the port "
            "sees them); otherwise such a dashboard shows aggregate views only", bool),
    Setting("MSMV_COHORT_VISIT", 0, "imaging visit the cohort pages and exports use: 0 each participant's "
            "first imaging visit with results, 2 the first imaging visit (instance 2) only, 3 the repeat "
            "imaging visit only; the Subject page shows every visit. Applied when the writer next opens "
            "(the wide table is rebuilt)", int, at_least=0),
    Setting("MSMV_SOURCE_PREFERENCE", ",".join(SOURCE_KINDS), "which metric source is each participant's "
            "default when several are stored: source kinds, most preferred first (`engine` MSMV's engine, "
            "`label-import` another tool's label map, `metrics-import` a metrics file, `simulated` demo "
            "values); kinds left out come after, in this default order; within a kind the latest written. "
            "Every source stays stored (the dashboard's Metric source choice and the Agreement page show "
            "them). Applied when the writer next opens (the wide table is rebuilt)", str, items=SOURCE_KINDS),
    Setting("server.address", None, "address the dashboard binds (loopback only until login is set up)",
            str),
    Setting("server.port", None, "port the dashboard serves on", int, at_least=1),
    Setting("server.maxUploadSize", None, "largest upload on the Jobs page, in MB (one UK Biobank Dixon "
            "zip is about 50-100 MB; Streamlit holds an upload in memory, so larger or many packages go "
            "through `msmv submit` or the inbox folder)", int, at_least=1),
    Setting("server.enableXsrfProtection", None, "XSRF protection of uploads", bool),
)
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """The declaration of ``name``; SettingError naming the known settings if there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SettingError(f"unknown setting {name!r}; known: {', '.join(_BY_NAME)}") from None


def _parse(s: Setting, raw: object, where: str) -> Value:
    """``raw`` (an environment string or a TOML value) as the setting's type, checked; ``where`` names
    the variable or the file and key it came from."""
    try:
        if s.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in _TRUE | _FALSE:
                raise ValueError("expected true or false")
            return text in _TRUE
        if s.type in (int, float):
            kind = "an integer" if s.type is int else "a number"
            if isinstance(raw, bool) or (s.type is int and isinstance(raw, float)):
                raise ValueError(f"expected {kind}")
            try:
                value = s.type(str(raw).strip()) if isinstance(raw, str) else s.type(raw)
            except ValueError:
                raise ValueError(f"expected {kind}") from None
            if s.at_least is not None and value < s.at_least:
                raise ValueError(f"expected at least {s.at_least:g}")
            return value
        if not isinstance(raw, str):
            raise ValueError("expected text")
        return raw if s.items is None else _items(s.items, raw)
    except ValueError as err:
        raise SettingError(f"{where} = {raw!r}: {err}") from None


def _items(allowed: tuple[str, ...], raw: str) -> str:
    """``raw`` as a comma-separated list of ``allowed`` words, each at most once (spaces dropped)."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [p for p in parts if p not in allowed]
    if unknown or not parts:
        raise ValueError(f"expected a comma-separated list of {', '.join(allowed)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given more than once")
    return ",".join(parts)


@cache
def _streamlit_config(path: Path) -> dict[str, object]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def default(name: str) -> Value:
    """The value of ``name`` when no environment variable overrides it."""
    s = setting(name)
    if s.default is not None:  # every MSMV_* setting; Streamlit's have None
        return s.default
    section, key = s.name.split(".", 1)
    try:
        raw = _streamlit_config(STREAMLIT_CONFIG)[section][key]  # type: ignore[index]
    except FileNotFoundError as err:
        raise SettingError(f"{STREAMLIT_CONFIG} is missing: it holds Streamlit's {s.name}") from err
    except KeyError as err:
        raise SettingError(f"{STREAMLIT_CONFIG} has no {key} in [{section}] (expected Streamlit's "
                           f"{s.name})") from err
    return _parse(s, raw, f"{STREAMLIT_CONFIG} [{section}] {key}")


def get(name: str, env: Mapping[str, str] | None = None) -> Value:
    """The value of setting ``name``: its environment variable if set and not empty, else its default.

    ``env`` replaces ``os.environ`` (tests). SettingError for an unknown name or an unusable value.
    """
    s = setting(name)
    raw = (os.environ if env is None else env).get(s.env, "")
    return _parse(s, raw, s.env) if raw.strip() else default(name)


def show(value: Value) -> str:
    """``value`` as written in the README and in ``config.toml`` (``true``, ``30``, ``4GB``)."""
    if isinstance(value, bool):
        return str(value).lower()
    return format(value, "g") if isinstance(value, float) else str(value)


def markdown() -> str:
    """The README's settings table: one row per setting with its default and meaning."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        name = f"`{s.name}` in `.streamlit/config.toml` (or `{s.env}`)" if s.streamlit else f"`{s.name}`"
        rows.append(f"| {name} | `{show(default(s.name))}` | {s.help} |")
    return "\n".join(rows) + "\n"
