"""`coinlake import-seed` benchmark (run on demand, not a test).

    .venv/bin/python benchmarks/seed_import.py                  # 3 pairs x 10,000 minutes
    .venv/bin/python benchmarks/seed_import.py --minutes 50000 --per-object 60

Builds a seed landing bucket in a temporary folder (one object per pair and `--per-object`
records, every other record with the `USD <amount> ` prefix, as the seed's Lambda and
Firehose wrote them) and the same prices as coinlake landing files, then measures, side by
side in one run:

- import: `import_seed` (decode, landing files, bookmarks) plus its ETL pass, into a fresh
  data directory;
- native: one ETL pass over the same prices already in coinlake's landing format;
- again: a second `import_seed` of the same bucket (adds nothing).

Prints seconds and the ratios import/native and again/import; writes
`benchmarks/results/seed_import.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from coinlake.contract import SOURCE_SEED_IMPORT, LandingRecord, event_id_for, landing_prefix
from coinlake.migrate.seed_import import import_seed
from coinlake.pipeline import Pipeline
from coinlake.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results" / "seed_import.json"
START = dt.datetime(2023, 10, 1, tzinfo=dt.UTC)
BASES = ("BTC", "ETH", "XRP")


def seed_bytes(base: str, amount: str, ts: str, money: bool) -> bytes:
    obj = {"amount": amount, "base": base, "currency": "USD", "timestamp_utc": ts}
    text = json.dumps(obj, sort_keys=True, indent=2)
    return (f"USD {amount} {text}" if money else text).encode()


def build(root: Path, landing: Path, minutes: int, per_object: int) -> int:
    count = 0
    for base in BASES:
        chunk: list[bytes] = []
        native: dict[str, list[bytes]] = {}
        for m in range(minutes):
            at = START + dt.timedelta(minutes=m)
            ts = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            amount = f"{27000 + m % 5000}.{m % 100:02d}"
            chunk.append(seed_bytes(base, amount, ts, m % 2 == 0))
            rec = LandingRecord(
                event_id=event_id_for(SOURCE_SEED_IMPORT, f"{base}-USD", at), source=SOURCE_SEED_IMPORT,
                crypto=base, currency="USD", amount=amount, timestamp_utc=ts, ingested_at=ts,
            )  # fmt: skip
            native.setdefault(landing_prefix(at), []).append(rec.to_json_line())
            count += 1
            if len(chunk) == per_object or m == minutes - 1:
                key = root / f"currency={base}/year={at:%Y}/month={at:%m}/day={at:%d}/stream-1-{at:%Y-%m-%d-%H-%M}-{m}"
                key.parent.mkdir(parents=True, exist_ok=True)
                key.write_bytes(b"".join(chunk))
                chunk = []
        for prefix, lines in native.items():
            path = landing / prefix / f"native-{base}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(lines))
    return count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=10_000)
    ap.add_argument("--per-object", type=int, default=60)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coinlake-bench-seed-"))
    try:
        records = build(tmp / "bucket", tmp / "native" / "landing", args.minutes, args.per_object)
        with Pipeline(load_settings(data_dir=tmp / "native")) as p:
            t0 = time.perf_counter()
            native_etl = p.etl_once()
            native = time.perf_counter() - t0
        with Pipeline(load_settings(data_dir=tmp / "imported")) as p:
            t0 = time.perf_counter()
            report, etl = import_seed(p, str(tmp / "bucket"))
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            again_report, _ = import_seed(p, str(tmp / "bucket"))
            again = time.perf_counter() - t0
        assert etl.written == native_etl.written == records and again_report.objects == 0
        figures = {
            "records": records,
            "objects": report.objects,
            "import_seconds": round(first, 3),
            "native_etl_seconds": round(native, 3),
            "second_import_seconds": round(again, 3),
            "import_over_native": round(first / native, 2),
            "second_over_first": round(again / first, 3),
            "import_records_per_second": round(records / first),
            "machine": platform.platform(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for k, v in figures.items():
        print(f"{k:28} {v}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
