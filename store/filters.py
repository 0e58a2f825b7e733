"""Cohort filters: one frozen value shared by the dashboard (URL query params), the reader (SQL) and
the CLI export (a JSON file)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from store.vocabulary import SEX_CODING, SEXES

_RANGES = ("age", "bmi")
QC_PARAM, QC_EXCLUDE = "qc", "exclude"  # ?qc=exclude: leave out QC-flagged subjects
METRICS_PARAM = "metrics"  # ?metrics=musclemap: show that metric source's values instead of the default
_SETS = {"sex": int, "centre": str, "source": str}
# The longest query-parameter value read: every real filter (a few centres or sources) is far shorter,
# and parsing or echoing a 100 kB value would stall the page.
MAX_PARAM_CHARS = 2000
# Values in a set parameter are joined by commas; a comma or percent sign inside one value (a source
# label such as "ukb,2024") is percent-encoded so the list splits back into the same values.
_ESCAPES = (("%", "%25"), (",", "%2C"))


def _encode(value: str) -> str:
    for raw, code in _ESCAPES:
        value = value.replace(raw, code)
    return value


def _decode(value: str) -> str:
    for raw, code in reversed(_ESCAPES):
        value = value.replace(code, raw)
    return value


@dataclass(frozen=True)
class CohortFilter:
    """Which participants to include; ``None`` means no restriction on that column.

    ``age`` and ``bmi`` are inclusive ``(low, high)`` ranges; ``sex`` (1 male, 0 female), ``centre``
    and ``source`` are allowed values.
    """

    sex: tuple[int, ...] | None = None
    age: tuple[float, float] | None = None
    bmi: tuple[float, float] | None = None
    centre: tuple[str, ...] | None = None
    source: tuple[str, ...] | None = None
    # Leave out subjects with QC flags (engine.quality). QC needs reference groups the SQL condition
    # cannot express, so where() leaves it to whoever loads the rows: the dashboard's loader
    # (dashboard.data.participants) and the exports, which ask engine.quality for the flagged eids.
    exclude_qc: bool = False
    # Whose MRI values the rows carry: a stored metric source's name, or None for each participant's
    # default (store.metrics.source_preference). Not a condition either: the reader picks the rows' source.
    metric_source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.exclude_qc, bool):
            raise TypeError(f"exclude_qc must be true or false, found {self.exclude_qc!r}")
        if self.metric_source is not None and (not isinstance(self.metric_source, str) or not self.metric_source):
            raise TypeError(f"metric_source must be a source name or None, found {self.metric_source!r}")
        for name in _RANGES:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise TypeError(f"{name} must be a (low, high) pair or None, found {value!r}")
            low, high = _bound(name, value[0], value), _bound(name, value[1], value)
            if low > high:
                raise ValueError(f"{name} range must have low <= high, found ({low}, {high})")
            object.__setattr__(self, name, (low, high))
        for name, kind in _SETS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str | int):
                value = (value,)
            if not isinstance(value, tuple | list):
                raise TypeError(f"{name} must be a tuple of values or None, found {value!r}")
            object.__setattr__(self, name, tuple(sorted({_member(name, kind, v) for v in value})))

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, False) for f in fields(self))

    def where(self) -> tuple[str, list[Any]]:
        """A parameterised SQL condition over the wide table: ``("sex IN (?) AND ...", [1, ...])``.

        Column names are fixed here; only values travel as parameters. ``"TRUE"`` when empty.
        """
        clauses: list[str] = []
        params: list[Any] = []
        for name in _SETS:
            value = getattr(self, name)
            if value is not None:
                if not value:
                    clauses.append("FALSE")
                    continue
                clauses.append(f"{name} IN ({', '.join('?' for _ in value)})")
                params += list(value)
        for name in _RANGES:
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{name} BETWEEN ? AND ?")
                params += list(value)
        return (" AND ".join(clauses) or "TRUE"), params

    # -- URL query params ----------------------------------------------------------------------
    def to_query_params(self) -> dict[str, str]:
        """``{"sex": "0,1", "age": "50-70", ...}``; unrestricted fields are left out."""
        out: dict[str, str] = {}
        for name in _SETS:
            value = getattr(self, name)
            if value is not None:
                out[name] = ",".join(_encode(str(v)) for v in value)
        for name in _RANGES:
            value = getattr(self, name)
            if value is not None:
                out[name] = f"{_num(value[0])}~{_num(value[1])}"
        if self.exclude_qc:
            out[QC_PARAM] = QC_EXCLUDE
        if self.metric_source is not None:
            out[METRICS_PARAM] = self.metric_source
        return out

    @classmethod
    def from_query_params(cls, params: Mapping[str, Any]) -> CohortFilter:
        """Inverse of :meth:`to_query_params`; unknown keys are ignored (the URL holds other state).

        Raises ``ValueError`` naming the parameter when a value cannot be parsed or is longer than
        ``MAX_PARAM_CHARS`` (the message never repeats a long value).
        """
        for name in (*_SETS, *_RANGES, METRICS_PARAM):
            raw = _single(params.get(name))
            if raw is not None and len(raw) > MAX_PARAM_CHARS:
                raise ValueError(f"query parameter {name} is {len(raw):,} characters long; "
                                 f"at most {MAX_PARAM_CHARS:,} are read")
        kwargs: dict[str, Any] = {}
        for name, kind in _SETS.items():
            if name in params and _single(params[name]) is None:
                kwargs[name] = ()  # present but empty: nothing allowed
                continue
            raw = _single(params.get(name))
            if raw is None:
                continue
            parts = [_decode(p.strip()) for p in raw.split(",") if p.strip()]
            try:
                kwargs[name] = tuple(kind(p) for p in parts)
            except ValueError as err:
                raise ValueError(f"query parameter {name}={raw!r}: expected comma-separated values") from err
        for name in _RANGES:
            raw = _single(params.get(name))
            if raw is None:
                continue
            try:
                low, high = raw.split("~")
                kwargs[name] = (float(low), float(high))
            except ValueError as err:
                raise ValueError(f"query parameter {name}={raw!r}: expected LOW~HIGH, e.g. 50~70") from err
        if _single(params.get(QC_PARAM)) is not None:
            raw = _single(params.get(QC_PARAM))
            if raw != QC_EXCLUDE:
                raise ValueError(f"query parameter {QC_PARAM}={str(raw)[:40]!r}: expected {QC_EXCLUDE!r} or nothing")
            kwargs["exclude_qc"] = True
        if _single(params.get(METRICS_PARAM)) is not None:
            kwargs["metric_source"] = _single(params.get(METRICS_PARAM))
        return cls(**kwargs)

    # -- JSON (the export filter file) ---------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({k: v if isinstance(v, bool | str) else list(v) for k, v in asdict(self).items()
                           if v is not None and v is not False}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CohortFilter:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"cohort filter is not valid JSON: {err}") from err
        if not isinstance(raw, dict):
            raise ValueError(f"cohort filter JSON must be an object, found {type(raw).__name__}")
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown cohort filter key(s) {unknown}; expected sex, age, bmi, centre, source, exclude_qc, "
                             "metric_source")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if v is not None})


def _bound(name: str, value: Any, pair: Any) -> float:
    """One end of a range as a float; a filter file can hold anything, so say what was found."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{name} must be a (low, high) pair of numbers, found {value!r} in {list(pair)!r}")
    try:
        number = float(value)
    except ValueError as err:
        raise ValueError(f"{name} must be a (low, high) pair of numbers, found {value!r} in {list(pair)!r}") from err
    if math.isnan(number):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, found NaN in {list(pair)!r}")
    return number


def _member(name: str, kind: type, value: Any) -> int | str:
    """One allowed value of a set filter, checked: ``int(1.5)`` or ``str(None)`` would pass silently."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{name} values must be {'integers' if kind is int else 'text'}, found {value!r}")
    if kind is str:
        return str(value)
    try:
        number = float(value)
    except ValueError as err:
        raise ValueError(f"{name} values must be integers, found {value!r}") from err
    if not number.is_integer():
        raise ValueError(f"{name} values must be integers, found {value!r}")
    code = int(number)
    if name == "sex" and code not in SEXES:
        raise ValueError(f"sex values must be {SEX_CODING}, found {value!r}")
    return code


def _num(x: float) -> str:
    """Shortest text that reads back as the same float (50.0 -> "50")."""
    return str(int(x)) if x.is_integer() else repr(x)


def _single(value: Any) -> str | None:
    """Query params may arrive as a string or a list of strings (st.query_params.get_all)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    return None if value is None or str(value) == "" else str(value)
