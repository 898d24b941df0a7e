"""The REST API: FastAPI app, API keys, usage plans (rate limit, burst, quota)."""
