# prod: protected, longer retention. Costs at these settings: README.md, "Deploying to AWS".
environment = "prod"
region      = "eu-west-1"

# Alerts: the address comes from `-var endpoint=you@example.com` or TF_VAR_endpoint (the deploy
# workflow sets it from the environment's ALERT_EMAIL variable), so no address lives in git.
# SNS mails it a confirmation link; nothing arrives until it is clicked.
btc_threshold = 100000

# Nothing stateful goes away with a stray destroy.
force_destroy       = false
deletion_protection = true

# On demand (the seed's choice): no shard to size, absorbs any burst; 1 shard is cheaper (README).
kinesis_stream_mode             = "ON_DEMAND"
kinesis_stream_retention_period = 48

# Longer retention.
log_retention_days                 = 90
landing_expiration_days            = 90
athena_results_expiration_days     = 7
logs_expiration_days               = 365
noncurrent_version_expiration_days = 30

# Glue hourly, five minutes past (Firehose has flushed the hour by then).
etl_schedule_expression = "cron(5 * * * ? *)"
glue_worker_type        = "G.1X"
glue_number_of_workers  = 2

# Athena: cancel any query scanning more than 1 GiB.
athena_bytes_scanned_cutoff_per_query = 1073741824

# API: stage `prod` (URLs .../prod/v1/prices/latest); a standard and a partner plan.
stage_name   = "prod"
rate_limit   = 20
burst_limit  = 40
quota_limit  = 10000
quota_period = "DAY"
extra_usage_plans = {
  partner = { rate_limit = 50, burst_limit = 100, quota_limit = 100000, quota_period = "DAY" }
}
api_keys = { default = "standard" }

# Ticks (modules/ticks): off; see its README to turn it on.
enable_ticks = false
