# One environment of coinlake: the nine modules (and ticks, off by default), wired output to input.
# The same file in environments/dev and environments/prod (a test checks they are equal).
#
#   source (Lambda, every minute) -> stream (Kinesis) -> delivery (Firehose) -> storage: landing
#   landing -> etl (Glue, hourly) -> storage: lake, rollups -> query (Athena) -> api (API Gateway + Lambda)
#   landing -> alerts (Lambda on ObjectCreated -> SNS); monitoring: dashboard and alarms -> alerts topic

locals {
  name_prefix = coalesce(var.name_prefix, "${var.project}-${var.environment}")

  # Lambda packages, as `make package` names them.
  packages = {
    for fn in ["coinbase_api_call", "lambda_triggering_sns", "query_athena"] : fn => "${var.build_dir}/${fn}.zip"
  }

  # The wheel of coinlake for Glue (`make package` builds it into build_dir).
  glue_wheels       = fileset(var.build_dir, "coinlake-*.whl")
  glue_library_path = var.glue_library_path != null ? var.glue_library_path : "${var.build_dir}/${try(one(local.glue_wheels), "coinlake-MISSING.whl")}"

  # One definition of what is collected: the symbols; the Glue tables project their bases.
  cryptos = distinct([for s in var.symbols : split("-", s)[0]])

  # Glue database names are per account and region: one per environment (Athena prefers `_`).
  database_name = replace(local.name_prefix, "-", "_")

  usage_plans = merge(
    {
      standard = {
        rate_limit   = var.rate_limit
        burst_limit  = var.burst_limit
        quota_limit  = var.quota_limit
        quota_period = var.quota_period
      }
    },
    var.extra_usage_plans,
  )

  # The seed's single `endpoint` and the list; empty ones dropped (the workflow passes an unset variable as "").
  alert_emails = distinct(compact(concat([var.endpoint], var.alert_emails)))
}

module "storage" {
  source = "../../modules/storage"

  name_prefix                        = local.name_prefix
  force_destroy                      = var.force_destroy
  landing_expiration_days            = var.landing_expiration_days
  athena_results_expiration_days     = var.athena_results_expiration_days
  logs_expiration_days               = var.logs_expiration_days
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  deny_insecure_transport            = var.deny_insecure_transport
  tags                               = var.tags
}

module "stream" {
  source = "../../modules/stream"

  name_prefix     = local.name_prefix
  stream_mode     = var.kinesis_stream_mode
  shard_count     = var.kinesis_shard_count
  retention_hours = var.kinesis_stream_retention_period
  tags            = var.tags
}

module "delivery" {
  source = "../../modules/delivery"

  name_prefix        = local.name_prefix
  kinesis_stream_arn = module.stream.kinesis_stream_arn
  landing_bucket_arn = module.storage.landing_bucket_arn
  buffering_interval = var.firehose_buffering_interval
  buffering_size     = var.firehose_buffering_size
  tags               = var.tags
}

module "source" {
  source = "../../modules/source"

  name_prefix             = local.name_prefix
  package_path            = local.packages.coinbase_api_call
  kinesis_stream_name     = module.stream.kinesis_stream_name
  kinesis_stream_arn      = module.stream.kinesis_stream_arn
  symbols                 = var.symbols
  schedule_expression     = var.poll_schedule_expression
  dead_letter_bucket_name = module.storage.landing_bucket_name
  dead_letter_bucket_arn  = module.storage.landing_bucket_arn
  coinbase_url            = var.coinbase_url
  log_retention_days      = var.log_retention_days
  log_format              = var.lambda_log_format
  use_coinbase_secret     = var.use_coinbase_secret
  deletion_protection     = var.deletion_protection
  tags                    = var.tags
}

module "etl" {
  source = "../../modules/etl"

  name_prefix              = local.name_prefix
  script_path              = var.glue_script_path
  library_path             = local.glue_library_path
  glue_scripts_bucket_name = module.storage.glue_scripts_bucket_name
  glue_scripts_bucket_arn  = module.storage.glue_scripts_bucket_arn
  landing_bucket_name      = module.storage.landing_bucket_name
  landing_bucket_arn       = module.storage.landing_bucket_arn
  lake_bucket_name         = module.storage.lake_bucket_name
  lake_bucket_arn          = module.storage.lake_bucket_arn
  rollups_bucket_name      = module.storage.rollups_bucket_name
  rollups_bucket_arn       = module.storage.rollups_bucket_arn
  cryptos                  = local.cryptos
  database_name            = local.database_name
  schedule_expression      = var.etl_schedule_expression
  worker_type              = var.glue_worker_type
  number_of_workers        = var.glue_number_of_workers
  projection_years         = var.glue_projection_years
  tags                     = var.tags
}

module "query" {
  source = "../../modules/query"

  name_prefix                    = local.name_prefix
  athena_results_bucket_name     = module.storage.athena_results_bucket_name
  athena_results_bucket_arn      = module.storage.athena_results_bucket_arn
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff_per_query
  tags                           = var.tags
}

module "api" {
  source = "../../modules/api"

  name_prefix               = local.name_prefix
  package_path              = local.packages.query_athena
  athena_workgroup_name     = module.query.athena_workgroup_name
  athena_workgroup_arn      = module.query.athena_workgroup_arn
  glue_database_name        = module.etl.glue_database_name
  lake_bucket_arn           = module.storage.lake_bucket_arn
  rollups_bucket_arn        = module.storage.rollups_bucket_arn
  athena_results_bucket_arn = module.storage.athena_results_bucket_arn
  latest_table_name         = module.source.latest_table_name
  latest_table_arn          = module.source.latest_table_arn
  stage_name                = var.stage_name
  usage_plans               = local.usage_plans
  api_keys                  = var.api_keys
  log_retention_days        = var.log_retention_days
  tags                      = var.tags
}

module "alerts" {
  source = "../../modules/alerts"

  name_prefix         = local.name_prefix
  alert_emails        = local.alert_emails
  deletion_protection = var.deletion_protection
  package_path        = local.packages.lambda_triggering_sns
  landing_bucket_name = module.storage.landing_bucket_name
  landing_bucket_arn  = module.storage.landing_bucket_arn
  btc_threshold       = var.btc_threshold
  log_retention_days  = var.log_retention_days
  # CloudWatch alarms and EventBridge (Glue failures) publish to the topic: its own KMS key and policy
  service_publishers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
  tags               = var.tags
}

module "monitoring" {
  source = "../../modules/monitoring"

  name_prefix         = local.name_prefix
  alarm_topic_arn     = module.alerts.sns_topic_arn
  kinesis_stream_name = module.stream.kinesis_stream_name
  firehose_name       = module.delivery.firehose_name
  lambda_function_names = [
    module.source.lambda_function_name,
    module.alerts.lambda_function_name,
    module.api.lambda_function_name,
  ]
  glue_job_name           = module.etl.glue_job_name
  rest_api_name           = module.api.rest_api_name
  stage_name              = var.stage_name
  iterator_age_ms         = var.iterator_age_ms
  put_records_success_min = var.put_records_success_min
  data_freshness_seconds  = var.data_freshness_seconds
  api_latency_p99_ms      = var.api_latency_p99_ms
  tags                    = var.tags
}

# Ticks (off by default): an always-on Fargate task putting the WebSocket feed's ticks on the stream.
module "ticks" {
  source = "../../modules/ticks"
  count  = var.enable_ticks ? 1 : 0

  name_prefix         = local.name_prefix
  image               = var.ticks_image
  ecr_repository_arn  = var.ticks_ecr_repository_arn
  kinesis_stream_name = module.stream.kinesis_stream_name
  kinesis_stream_arn  = module.stream.kinesis_stream_arn
  symbols             = var.symbols
  vpc_id              = var.ticks_vpc_id
  subnet_ids          = var.ticks_subnet_ids
  assign_public_ip    = var.ticks_assign_public_ip
  log_retention_days  = var.log_retention_days
  tags                = var.tags
}
