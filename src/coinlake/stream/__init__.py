"""The embedded durable stream (the Kinesis of the local shape)."""
