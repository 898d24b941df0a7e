"""Delivery: stream -> buffered landing files (the Firehose of the local shape)."""
