"""Sources of spot prices: the Coinbase HTTP client, the poller and the simulator."""
