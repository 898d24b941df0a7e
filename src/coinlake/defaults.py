"""The defaults that `coinlake … --help` shows, as plain values.

`Settings` (and `ApiSettings`) declare their fields with these, so each default is written
once; the command line reads them from here because importing this module costs nothing,
while the settings machinery (pydantic, pydantic-settings) would make every `--help` wait.
"""

from __future__ import annotations

from typing import Literal

#: Where `run` gets its prices: live Coinbase polled (`coinbase`) or its WebSocket ticks
#: (`coinbase-ws`), or the embedded simulator polled or as a feed (`simulated`, `simulated-ws`).
Source = Literal["coinbase", "simulated", "coinbase-ws", "simulated-ws"]
#: The sources that read a WebSocket feed instead of polling.
TICK_SOURCES = ("coinbase-ws", "simulated-ws")

DATA_DIR = "coinlake-data"
SOURCE: Source = "coinbase"
COINBASE_URL = "https://api.coinbase.com"
#: The Coinbase Exchange WebSocket feed (ticks).
COINBASE_WS_URL = "wss://ws-feed.exchange.coinbase.com"
SYMBOLS = ("BTC-USD", "ETH-USD", "XRP-USD")
INTERVAL = 60.0
BUFFER_INTERVAL = 300.0
BUFFER_SIZE_MIB = 5.0
ETL_INTERVAL = 60.0
#: Coinbase Exchange's public REST API (the candles `coinlake backfill` reads live there).
EXCHANGE_URL = "https://api.exchange.coinbase.com"
#: Candles requests a second at most (Coinbase allows about 10 per IP).
BACKFILL_REQUESTS_PER_SECOND = 8.0
API_HOST = "127.0.0.1"
API_PORT = 8000

#: Setting name (dotted for a section) -> its default, for `--help`.
SHOWN: dict[str, object] = {
    "data_dir": DATA_DIR,
    "source": SOURCE,
    "coinbase_url": COINBASE_URL,
    "symbols": list(SYMBOLS),
    "interval": INTERVAL,
    "duration": None,
    "buffer_interval": BUFFER_INTERVAL,
    "buffer_size_mib": BUFFER_SIZE_MIB,
    "etl_interval": ETL_INTERVAL,
    "api.host": API_HOST,
    "api.port": API_PORT,
    "ticks.url": COINBASE_WS_URL,
    "backfill.exchange_url": EXCHANGE_URL,
    "backfill.requests_per_second": BACKFILL_REQUESTS_PER_SECOND,
}
