"""Property: for any set of points (ties, duplicates, two ETL passes) and any range, the
catalogue's candles and stats equal the plain-Python oracle, read through the rollup or
from raw partitions alone."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinlake.query.catalogue import Catalogue
from coinlake.query.engines import DuckDBEngine
from unit.query import oracle
from unit.query.oracle import Lake, record

BASE = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)  # ranges cross a day and a month boundary
SPAN = 2 * 86_400

_point = st.tuples(
    st.integers(0, SPAN),  # second after BASE (repeats make ties)
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("99999"), places=6),
    st.sampled_from(["USD", "USD", "USD", "EUR"]),
    st.booleans(),  # landed in the first or the second pass
)


@st.composite
def _case(draw):
    pts = draw(st.lists(_point, min_size=1, max_size=50))
    a = draw(st.integers(-3600, SPAN + 3600))
    b = draw(st.integers(-3600, SPAN + 3600))
    start, end = sorted((a, b))
    micro = draw(st.integers(0, 999_999))
    interval = draw(st.sampled_from(list(oracle.SECONDS)))
    return pts, BASE + dt.timedelta(seconds=start, microseconds=micro), BASE + dt.timedelta(seconds=end + 1), interval


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_candles_and_stats_equal_the_oracle_for_any_points_and_range(case):
    points, start, end, interval = case
    records = [
        record("BTC", BASE + dt.timedelta(seconds=s), f"{amount:f}", currency=currency, event_id=f"e{i}")
        for i, (s, amount, currency, _) in enumerate(points)
    ]
    first = [r for r, p in zip(records, points, strict=True) if p[3]]
    second = [r for r, p in zip(records, points, strict=True) if not p[3]] + first[:3]  # duplicates too
    pts = oracle.points(records)
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(Path(tmp))
        try:
            lake.load(first)
            lake.load(second, max_batch_records=7)
            for rollups in (lake.rollups, None):
                with DuckDBEngine(lake.lake, rollups) as engine:
                    cat = Catalogue(engine, background=False)
                    for currency in ("USD", "EUR"):
                        got = [
                            (c.start, c.open, c.high, c.low, c.close, c.count)
                            for c in cat.candles("BTC", interval, start, end, currency=currency)
                        ]
                        assert got == oracle.candles(pts, "BTC", currency, start, end, interval)
                        s = cat.stats("BTC", start, end, currency=currency)
                        want = oracle.stats(pts, "BTC", currency, start, end)
                        if want is None:
                            assert s.count == 0
                        else:
                            assert {k: getattr(s, k) for k in want} == want
        finally:
            lake.close()
