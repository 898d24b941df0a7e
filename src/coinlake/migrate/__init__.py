"""Bringing data from elsewhere into coinlake: `seed_format` reads the seed's own landing
bucket (pure), `seed_import` loads it into the lake through the normal landing zone and ETL."""
