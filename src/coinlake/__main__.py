from coinlake.cli import app

app()
