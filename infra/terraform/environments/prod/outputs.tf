output "name_prefix" {
  description = "Prefix of every resource name of this environment."
  value       = local.name_prefix
}

# API
output "api_invoke_url" {
  description = "Base URL of the API (the stage's invoke URL): curl -H \"x-api-key: $KEY\" \"$URL/prices/latest\"."
  value       = module.api.api_invoke_url
}

output "rest_api_id" {
  description = "ID of the REST API."
  value       = module.api.rest_api_id
}

output "api_key_ids" {
  description = "API key ids by name; the value: aws apigateway get-api-key --api-key ID --include-value --query value --output text."
  value       = module.api.api_key_ids
}

output "usage_plan_ids" {
  description = "Usage plan ids by name."
  value       = module.api.usage_plan_ids
}

# Buckets
output "landing_bucket_name" {
  description = "Firehose writes here (YYYY/MM/DD/HH/); dead letters under dead-letter/."
  value       = module.storage.landing_bucket_name
}

output "lake_bucket_name" {
  description = "The Parquet lake (Glue writes, Athena reads)."
  value       = module.storage.lake_bucket_name
}

output "rollups_bucket_name" {
  description = "The hourly candles."
  value       = module.storage.rollups_bucket_name
}

output "athena_results_bucket_name" {
  description = "Athena query results."
  value       = module.storage.athena_results_bucket_name
}

output "glue_scripts_bucket_name" {
  description = "The Glue job's script and the coinlake wheel."
  value       = module.storage.glue_scripts_bucket_name
}

output "logs_bucket_name" {
  description = "S3 access logs."
  value       = module.storage.logs_bucket_name
}

# Stream and delivery
output "kinesis_stream_name" {
  description = "The Kinesis stream the producer puts records on."
  value       = module.stream.kinesis_stream_name
}

output "firehose_name" {
  description = "The Firehose stream from Kinesis to the landing bucket."
  value       = module.delivery.firehose_name
}

# Functions, secret, ETL, query
output "lambda_function_names" {
  description = "Lambda functions by handler."
  value = {
    coinbase_api_call     = module.source.lambda_function_name
    lambda_triggering_sns = module.alerts.lambda_function_name
    query_athena          = module.api.lambda_function_name
  }
}

output "coinbase_secret_arn" {
  description = "The Secrets Manager secret for the Coinbase key ({\"api_key\": …, \"api_secret\": …}); public prices need none."
  value       = module.source.secret_arn
}

output "glue_job_name" {
  description = "The Glue ETL job."
  value       = module.etl.glue_job_name
}

output "glue_database_name" {
  description = "The Glue catalog database (Athena's database)."
  value       = module.etl.glue_database_name
}

output "glue_table_names" {
  description = "The Glue tables Athena queries."
  value       = [module.etl.spot_prices_table_name, module.etl.candles_table_name]
}

output "athena_workgroup_name" {
  description = "The Athena workgroup (result location, per-query scan limit)."
  value       = module.query.athena_workgroup_name
}

# Alerts and monitoring
output "sns_topic_arn" {
  description = "The alerts topic (emails, alarms)."
  value       = module.alerts.sns_topic_arn
}

output "alert_rules_table_name" {
  description = "The DynamoDB table of the alert rules' state."
  value       = module.alerts.dynamodb_table_name
}

output "latest_prices_table_name" {
  description = "The DynamoDB table of the latest price per pair (the producer writes it, /v1/prices/latest reads it)."
  value       = module.source.latest_table_name
}

output "dashboard_name" {
  description = "The CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "alarm_names" {
  description = "The CloudWatch alarms (they notify the alerts topic)."
  value       = module.monitoring.alarm_names
}

output "glue_library_path" {
  description = "The coinlake wheel the Glue job installs."
  value       = local.glue_library_path

  precondition {
    condition     = var.glue_library_path != null || length(local.glue_wheels) == 1
    error_message = "The Glue job needs exactly one coinlake-*.whl in build_dir (run `make package`), or set glue_library_path."
  }
}

output "ticks_service_name" {
  description = "The ticks consumer's ECS service (null while enable_ticks is false)."
  value       = try(module.ticks[0].service_name, null)
}
