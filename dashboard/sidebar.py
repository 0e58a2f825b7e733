"""The shared sidebar cohort filter, mirrored in the URL (``st.query_params``) both ways.

Precedence: in a fresh session the URL wins (then "everyone"); afterwards the widgets' state, which
is carried from page to page, so the filter follows the user around the dashboard. After the widgets are drawn the filter is written back to the URL, so a
filtered view can be shared by copying the address bar. Only the filter's own keys are touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard.markup import literal
from store.centres import centre_name
from store.filters import CohortFilter
from store.metrics import BY_NAME
from store.vocabulary import MALE, SEX_LABELS

_STATE = "msmv_cohort_filter"  # the last filter of this session; survives page switches
_W = "msmv_filter_"  # widget key prefix
BMI_STEP = 0.5  # kg/m²: slider resolution
PREFERRED = ""  # the metric-source choice meaning each participant's default (MSMV_SOURCE_PREFERENCE)


@dataclass(frozen=True)
class FilterOptions:
    """What the widgets offer: bounds and the choices present in the (unfiltered) store."""

    age_bounds: tuple[float, float]
    bmi_bounds: tuple[float, float]
    centres: tuple[str, ...]
    sources: tuple[str, ...]  # where the participants' phenotypes came from (the wide table's ``source``)
    # The stored metric sources as (name, title), the default order first (dashboard.data adds them)
    metric_sources: tuple[tuple[str, str], ...] = ()


def filter_options(df: pd.DataFrame) -> FilterOptions:
    """Widget bounds from the unfiltered participants (``age``, ``bmi``, ``centre``, ``source``)."""
    missing = [c for c in ("age", "bmi", "centre", "source") if c not in df.columns]
    if missing:
        raise ValueError(f"participants lack column(s) {missing} needed by the sidebar filter")

    def bounds(col: str, step: float) -> tuple[float, float]:
        s = df[col].dropna()
        if s.empty:
            return (0.0, step)
        lo, hi = math.floor(s.min() / step) * step, math.ceil(s.max() / step) * step
        return (float(lo), float(hi if hi > lo else lo + step))

    def choices(col: str) -> tuple[str, ...]:
        return tuple(sorted(str(v) for v in df[col].dropna().unique()))

    return FilterOptions(bounds("age", 1.0), bounds("bmi", BMI_STEP), choices("centre"), choices("source"))


def filter_keys() -> frozenset[str]:
    """The URL keys the cohort filter owns (whatever CohortFilter names them)."""
    full = CohortFilter(sex=(MALE,), age=(0.0, 1.0), bmi=(0.0, 1.0), centre=("c",), source=("s",), exclude_qc=True,
                        metric_source="m")
    return frozenset(full.to_query_params())


def _clamp(rng: tuple[float, float] | None, bounds: tuple[float, float]) -> tuple[float, float]:
    if rng is None:
        return bounds
    lo, hi = max(bounds[0], min(rng)), min(bounds[1], max(rng))
    return (lo, hi) if lo <= hi else bounds


def _seed_widgets(flt: CohortFilter, opts: FilterOptions) -> None:
    """Put ``flt`` into the widgets' state before they are drawn."""
    st.session_state[_W + "sex"] = [SEX_LABELS[s] for s in (flt.sex or ()) if s in SEX_LABELS]
    st.session_state[_W + "age"] = _clamp(flt.age, opts.age_bounds)
    st.session_state[_W + "bmi"] = _clamp(flt.bmi, opts.bmi_bounds)
    st.session_state[_W + "centre"] = [c for c in (flt.centre or ()) if c in opts.centres]
    st.session_state[_W + "source"] = [s for s in (flt.source or ()) if s in opts.sources]
    st.session_state[_W + "qc"] = flt.exclude_qc
    names = [name for name, _ in opts.metric_sources]
    st.session_state[_W + "metrics"] = flt.metric_source if flt.metric_source in names else PREFERRED


def _from_widgets(opts: FilterOptions) -> CohortFilter:
    ss = st.session_state
    by_label = {v: k for k, v in SEX_LABELS.items()}
    sex = tuple(sorted(by_label[s] for s in ss[_W + "sex"]))
    age, bmi = tuple(ss[_W + "age"]), tuple(ss[_W + "bmi"])
    return CohortFilter(
        # "nothing selected" and "the full range" both mean no restriction, which keeps URLs short
        sex=sex if 0 < len(sex) < len(SEX_LABELS) else None,
        age=None if age == opts.age_bounds else (float(age[0]), float(age[1])),
        bmi=None if bmi == opts.bmi_bounds else (float(bmi[0]), float(bmi[1])),
        centre=tuple(ss[_W + "centre"]) or None,
        source=tuple(ss[_W + "source"]) or None,
        exclude_qc=bool(ss.get(_W + "qc", False)),
        metric_source=ss.get(_W + "metrics") or None,
    )


def _url_filter(params: Mapping[str, str]) -> CohortFilter | None:
    own = {k: v for k, v in params.items() if k in filter_keys()}
    if not own:
        return None
    try:
        return CohortFilter.from_query_params(own)
    except (TypeError, ValueError) as err:
        st.sidebar.warning(f"Ignored a cohort filter in the address that could not be read: {literal(err)}")
        return None


def _write_url(flt: CohortFilter) -> bool:
    """Mirror ``flt`` into the URL's filter keys (other keys are left alone); True when it changed."""
    wanted = flt.to_query_params()
    current = {k: v for k, v in st.query_params.to_dict().items() if k in filter_keys()}
    if current == wanted:
        return False
    for key in filter_keys():
        if key in wanted:
            st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]
    return True


def cohort_filter(opts: FilterOptions) -> CohortFilter:
    """Draw the sidebar filter and return the chosen :class:`CohortFilter` (mirrored in the URL)."""
    if (_W + "age") not in st.session_state:  # a fresh session, or back from a page without the filter
        start = _url_filter(st.query_params.to_dict()) or st.session_state.get(_STATE) or CohortFilter()
        _seed_widgets(start, opts)
    else:
        # Each page draws these widgets anew (a widget's identity includes its page) and a new widget
        # ignores state left by another: hand the values back through session_state, kept within the
        # current options (a newer snapshot may have other bounds or centres).
        _seed_widgets(_from_widgets(opts), opts)
    sb = st.sidebar
    sb.header("Cohort filter")
    sb.segmented_control("Sex", list(SEX_LABELS.values()), selection_mode="multi", key=_W + "sex",
                         help="None selected = both sexes")
    sb.slider(BY_NAME["age"].title, min_value=opts.age_bounds[0], max_value=opts.age_bounds[1], step=1.0,
              key=_W + "age")
    sb.slider(BY_NAME["bmi"].title, min_value=opts.bmi_bounds[0], max_value=opts.bmi_bounds[1], step=BMI_STEP,
              key=_W + "bmi")
    # Filter values stay UKB codes (what the store and exports hold); the widget shows coding-10 names.
    sb.multiselect("Centre", opts.centres, key=_W + "centre", placeholder="All centres", format_func=centre_name)
    titles = dict(opts.metric_sources)
    sb.selectbox("Metric source", [PREFERRED, *titles], key=_W + "metrics",
                 format_func=lambda name: titles.get(name, "Preferred per participant"),
                 help="Whose MRI values are shown. Preferred: each participant's first stored source in the "
                      "MSMV_SOURCE_PREFERENCE order (MSMV engine, imported label maps, imported metrics, "
                      "simulated by default); a named source shows only its values. Every source stays stored.")
    sb.multiselect("Phenotype source", opts.sources, key=_W + "source", placeholder="All sources",
                   help="Only participants whose phenotypes came from these sources")
    sb.toggle("Exclude QC-flagged subjects", key=_W + "qc",
              help="Leave out every imaged subject with a quality-control flag (see the Quality page)")
    flt = _from_widgets(opts)
    st.session_state[_STATE] = flt
    _write_url(flt)
    return flt
