from __future__ import annotations

import json

from netbpf.output import Column, Table

COLUMNS = [Column("name", "NAME"), Column("count", "COUNT", align=">"),
           Column("share", "SHARE", text=lambda v: f"{v:.1%}")]
ROWS = [{"name": "backend-1", "count": 1200, "share": 0.4}, {"name": "b2", "count": 7, "share": 0.0023}]


def test_text_is_aligned_and_uses_the_column_format() -> None:
    lines = Table(COLUMNS).render(ROWS).splitlines()
    assert lines[0] == "NAME       COUNT  SHARE"
    assert lines[1] == "backend-1   1200  40.0%"
    assert lines[2] == "b2             7  0.2%"


def test_json_keeps_raw_values_and_column_order() -> None:
    out = Table(COLUMNS).render(ROWS, "json").splitlines()
    assert json.loads(out[0]) == {"name": "backend-1", "count": 1200, "share": 0.4}
    assert list(json.loads(out[1])) == ["name", "count", "share"]


def test_csv_has_a_header_and_quotes_when_needed() -> None:
    rows = [{"name": "a,b", "count": 1, "share": 0.5}]
    assert Table(COLUMNS).render(rows, "csv").splitlines() == ["name,count,share", '"a,b",1,0.5']


def test_missing_values_print_as_dash() -> None:
    assert Table(COLUMNS).render([{"name": "x"}]).splitlines()[1].split() == ["x", "-", "-"]
