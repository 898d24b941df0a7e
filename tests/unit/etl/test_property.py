"""Property: whatever duplicates land in whatever files over whatever passes, the lake
holds every distinct event exactly once, with its exact price."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_event = st.tuples(
    st.sampled_from(["BTC", "ETH", "XRP"]),
    st.integers(0, 3 * 24 * 3600 - 1),  # second within three days: many partitions
    st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("999999999999"), places=12),
    st.booleans(),  # canonical `Z` timestamp, or `+00:00` (the per-record transform path)
)


@st.composite
def _scenario(draw):
    events = draw(st.lists(_event, min_size=1, max_size=25))
    # Deliveries: (event index, pass, file within the pass); events may repeat anywhere.
    deliveries = draw(
        st.lists(st.tuples(st.integers(0, len(events) - 1), st.integers(0, 2), st.integers(0, 3)), max_size=60)
    )
    batch = draw(st.integers(1, 12))
    return events, deliveries, batch


# The fixtures used here are stateless factories: sharing them between examples is fine.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_scenario())
def test_any_duplicates_over_any_files_and_passes_land_exactly_once(new_env, make_record, t0, scenario):
    events, deliveries, batch = scenario
    records = []
    for i, (crypto, second, amount, canonical) in enumerate(events):
        at = t0 + dt.timedelta(seconds=second)
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if canonical else "+00:00")
        records.append(make_record(crypto, stamp, f"{amount:f}", event_id=f"event-{i}"))

    with tempfile.TemporaryDirectory() as tmp:
        env = new_env(Path(tmp))
        try:
            total = written = 0
            for pass_no in range(3):
                for file_no in range(4):
                    lines = [records[i] for i, p, f in deliveries if (p, f) == (pass_no, file_no)]
                    if lines:
                        env.land(lines, key=f"2026/11/24/04/p{pass_no}-f{file_no}.json")
                r = env.run(max_batch_records=batch)
                total += r.records
                written += r.written
            table = env.lake_table()
        finally:
            env.state.close()

    delivered = {i for i, _, _ in deliveries}
    ids = table["event_id"].to_pylist()
    assert sorted(ids) == sorted(f"event-{i}" for i in delivered)  # each once
    assert total == len(deliveries) and written == len(delivered)
    prices = dict(zip(ids, table["price"].to_pylist(), strict=True))
    for i in delivered:
        assert prices[f"event-{i}"] == Decimal(records[i].amount)
