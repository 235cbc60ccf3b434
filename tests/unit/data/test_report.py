from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from loopml.data.profile import DatasetProfile, profile_table
from loopml.data.report import render_profile_html

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def profile() -> DatasetProfile:
    rng = np.random.default_rng(1)
    n = 300
    return profile_table(
        pd.DataFrame(
            {
                HOSTILE: rng.normal(size=n),
                "city": rng.choice(["paris", HOSTILE, 'a"b&c'], n),
                "flag": rng.random(n) < 0.5,
                "when": pd.Timestamp("2024-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
                "empty": [None] * n,
            }
        )
    )


def _figures(page: str) -> list[dict[str, object]]:
    found = re.search(r"const figures = (.*);\n", page)
    assert found is not None
    figures: list[dict[str, object]] = json.loads(found.group(1))
    return figures


def test_plotly_is_embedded_once_and_nothing_is_fetched(profile: DatasetProfile) -> None:
    page = render_profile_html(profile, title="Profile")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count(get_plotlyjs()) == 1
    markup = page.replace(get_plotlyjs(), "")  # the library's own strings aside
    assert markup.count("<script") == 2  # the library and the figures
    assert not re.search(r"<script[^>]*\ssrc\s*=", markup, re.IGNORECASE)
    assert not re.search(r"<link\b", markup, re.IGNORECASE)
    assert not re.search(r"https?:|(src|href)\s*=\s*[\"']?//", markup, re.IGNORECASE)
    assert "@import" not in markup


def test_user_strings_are_escaped(profile: DatasetProfile) -> None:
    page = render_profile_html(profile, title=f"Data {HOSTILE}")
    assert HOSTILE not in page
    assert "<script>alert" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>Data {escaped}</title>" in page
    assert f"<h2>{escaped} " in page  # the column section heading
    assert "a&quot;b&amp;c" in page or "a\\u0026quot;b\\u0026amp;c" in page


def test_sections_and_charts(profile: DatasetProfile) -> None:
    page = render_profile_html(profile, title="Profile")
    assert "<h2>Overview</h2>" in page
    assert '<th>Rows</th><td class="num">300</td>' in page
    assert "Missing cells" in page and "(20.0%)" in page  # 300 of 1,500 cells
    for index in range(profile.num_columns):
        assert f'id="column-{index}"' in page
    figures = _figures(page)
    ids = [f["id"] for f in figures]
    assert ids == ["chart-0", "chart-1", "chart-2", "chart-3"]  # the empty column has no chart
    for chart in ids:
        assert f'<div class="chart" id="{chart}"></div>' in page
    histogram, bars, _, dates = figures[0], figures[1], figures[2], figures[3]
    trace = histogram["data"][0]  # type: ignore[index]
    assert sum(trace["y"]) == 300 and len(trace["x"]) == 20
    categories = bars["data"][0]["x"]  # type: ignore[index]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in categories
    assert dates["layout"]["xaxis"]["type"] == "date"  # type: ignore[index]
    assert "Anomalies" not in page and 'id="validation"' not in page


def test_anomalies_table(profile: DatasetProfile) -> None:
    validation = {
        "passed": False,
        "anomalies": [
            {
                "column": "city",
                "kind": "unseen_category",
                "severity": "error",
                "message": f"value {HOSTILE} was never seen",
            },
            {"column": "gone", "kind": "missing_column", "severity": "warning", "message": "x"},
        ],
    }
    page = render_profile_html(profile, title="Profile", validation=validation)
    assert HOSTILE not in page
    section = page[page.index('id="validation"') :]
    section = section[: section.index("</section>")]
    assert '<span class="failed">failed</span>' in section
    assert "2 anomalies" in section
    assert section.count("<tr>") == 3  # header and two anomalies
    assert '<a href="#column-1">city</a>' in section  # links to the column's section
    assert '<td class="sev-error">error</td>' in section
    assert "value &lt;script&gt;alert(1)&lt;/script&gt; was never seen" in section
    assert "<td>gone</td>" in section


def test_passed_validation_without_anomalies(profile: DatasetProfile) -> None:
    validation = {"passed": True, "anomalies": [], "summary": "passed: 0 errors <b>"}
    page = render_profile_html(profile, title="t", validation=validation)
    assert '<span class="passed">passed</span>' in page
    assert "No anomalies." in page
    assert "passed: 0 errors &lt;b&gt;" in page


def test_malformed_validation_does_not_break_the_page(profile: DatasetProfile) -> None:
    validation = {"passed": False, "anomalies": ["disk on fire", {"column": None}]}
    page = render_profile_html(profile, title="t", validation=validation)
    assert "<td>disk on fire</td>" in page
    assert "2 anomalies" in page


def test_extreme_and_long_values_still_render() -> None:
    prefix = "x" * 60
    frame = pd.DataFrame(
        {
            "huge": [-1e308, 0.0, 1e308],
            "long": [prefix + "a", prefix + "b", prefix + "b"],
        }
    )
    page = render_profile_html(profile_table(frame), title="edge cases")
    huge, long = _figures(page)
    assert sum(huge["data"][0]["y"]) == 3  # type: ignore[index]
    labels = long["data"][0]["x"]  # type: ignore[index]
    assert labels == ["x" * 39 + "…", "x" * 39 + "… (2)"]  # truncated, yet two bars
