output "glue_job_name" {
  description = "Name of the Glue job."
  value       = aws_glue_job.this.name
}

output "glue_job_arn" {
  description = "ARN of the Glue job."
  value       = aws_glue_job.this.arn
}

output "glue_database_name" {
  description = "Name of the Glue database (the API's `COINLAKE_ATHENA__DATABASE`)."
  value       = aws_glue_catalog_database.this.name
}

output "glue_database_arn" {
  description = "ARN of the Glue database."
  value       = aws_glue_catalog_database.this.arn
}

output "spot_prices_table_name" {
  description = "Name of the raw prices table (`spot_prices`)."
  value       = aws_glue_catalog_table.this["spot_prices"].name
}

output "candles_table_name" {
  description = "Name of the hourly candles table (`candles_1h`, the API's `COINLAKE_ATHENA__ROLLUP_TABLE`)."
  value       = aws_glue_catalog_table.this["candles"].name
}

output "glue_table_arns" {
  description = "ARNs of both tables (for the query Lambda's policy)."
  value       = [for t in aws_glue_catalog_table.this : t.arn]
}

output "iam_role_arn" {
  description = "ARN of the Glue job's role."
  value       = aws_iam_role.this.arn
}

output "glue_trigger_name" {
  description = "Name of the job's scheduled trigger."
  value       = aws_glue_trigger.this.name
}

output "log_group_name" {
  description = "The job's continuous-logging CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}
