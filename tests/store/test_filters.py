from __future__ import annotations

import duckdb
import pytest

from store.filters import CohortFilter

FILTERS = [
    CohortFilter(),
    CohortFilter(sex=(1,)),
    CohortFilter(sex=(0, 1), age=(50, 69.5), bmi=(18.5, 30.123456789), centre=("11025",), source=("ukb", "simulated")),
    CohortFilter(age=(-1.0, 0.0)),
    CohortFilter(centre=()),
]


@pytest.mark.parametrize("f", FILTERS)
def test_round_trip_query_params(f: CohortFilter) -> None:
    params = f.to_query_params()
    assert all(isinstance(v, str) for v in params.values())
    assert CohortFilter.from_query_params(params) == f


@pytest.mark.parametrize("f", FILTERS)
def test_round_trip_json(f: CohortFilter) -> None:
    assert CohortFilter.from_json(f.to_json()) == f


def test_values_are_normalised_and_sorted() -> None:
    f = CohortFilter(sex=[1, 0, 1], age=[60, 70])
    assert f.sex == (0, 1)
    assert f.age == (60.0, 70.0)


def test_query_params_accept_lists_and_ignore_other_keys() -> None:
    f = CohortFilter.from_query_params({"sex": ["1"], "age": "40~50", "page": "cohort"})
    assert f == CohortFilter(sex=(1,), age=(40.0, 50.0))


def test_bad_values_are_rejected_with_the_parameter_named() -> None:
    with pytest.raises(ValueError, match=r"query parameter age='50-70': expected LOW~HIGH"):
        CohortFilter.from_query_params({"age": "50-70"})
    with pytest.raises(ValueError, match="age range must have low <= high, found"):
        CohortFilter(age=(70, 50))
    with pytest.raises(TypeError, match=r"bmi must be a \(low, high\) pair"):
        CohortFilter(bmi=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown cohort filter key\(s\) \['height'\]"):
        CohortFilter.from_json('{"height": [1, 2]}')


def test_where_selects_the_right_rows_with_bound_parameters() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE w AS SELECT * FROM (VALUES (1, 1, 55.0, 22.0, '11025', 'ukb'), (2, 0, 65.0, 31.0, '11026', 'ukb'),"
        " (3, 0, 70.0, 25.0, '11025', 'simulated'), (4, NULL, 60.0, 25.0, NULL, 'ukb'))"
        " t(eid, sex, age, bmi, centre, source)"
    )
    cases = {
        CohortFilter(): [1, 2, 3, 4],
        CohortFilter(sex=(0,)): [2, 3],
        CohortFilter(age=(55, 65)): [1, 2, 4],
        CohortFilter(sex=(0,), bmi=(20, 30)): [3],
        CohortFilter(centre=("11025",), source=("ukb",)): [1],
        CohortFilter(centre=()): [],
    }
    for f, expected in cases.items():
        where, params = f.where()
        assert "'" not in where  # values never inlined
        got = [r[0] for r in con.execute(f"SELECT eid FROM w WHERE {where} ORDER BY eid", params).fetchall()]
        assert got == expected, f
