# dev: small, cheap, disposable. Costs at these settings: README.md, "Deploying to AWS".
environment = "dev"
region      = "eu-west-1"

# Alerts: the address comes from `-var endpoint=you@example.com` or TF_VAR_endpoint (the deploy
# workflow sets it from the environment's ALERT_EMAIL variable), so no address lives in git.
# SNS mails it a confirmation link; nothing arrives until it is clicked.
btc_threshold = 100000

# Throwaway: destroy may delete non-empty buckets and the rule-state table.
force_destroy       = true
deletion_protection = false

# One provisioned shard (~11 USD a month) is cheaper than on-demand (~29 USD a month) at a few records a minute.
kinesis_stream_mode             = "PROVISIONED"
kinesis_shard_count             = 1
kinesis_stream_retention_period = 24

# Short retention.
log_retention_days                 = 7
landing_expiration_days            = 7
athena_results_expiration_days     = 1
logs_expiration_days               = 14
noncurrent_version_expiration_days = 1

# Glue every 6 hours instead of hourly: a quarter of the runs (each bills at least a minute of 2 DPU).
etl_schedule_expression = "cron(5 0/6 * * ? *)"
glue_worker_type        = "G.1X"
glue_number_of_workers  = 2

# Athena: cancel any query scanning more than 100 MiB.
athena_bytes_scanned_cutoff_per_query = 104857600

# API: stage `dev` (URLs .../dev/v1/prices/latest), one key on a small plan.
stage_name   = "dev"
rate_limit   = 5
burst_limit  = 10
quota_limit  = 1000
quota_period = "DAY"
api_keys     = { developer = "standard" }

# Ticks (modules/ticks): off; see its README to turn it on.
enable_ticks = false
