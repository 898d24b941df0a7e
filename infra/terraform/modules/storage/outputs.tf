output "landing_bucket_name" {
  description = "Name of the landing bucket (Firehose's `YYYY/MM/DD/HH/` files, the producer's `dead-letter/`, Firehose's `errors/`)."
  value       = aws_s3_bucket.this["landing"].id
}

output "landing_bucket_arn" {
  description = "ARN of the landing bucket."
  value       = aws_s3_bucket.this["landing"].arn
}

output "lake_bucket_name" {
  description = "Name of the lake (staging) bucket: the Glue job's partitioned Parquet."
  value       = aws_s3_bucket.this["lake"].id
}

output "lake_bucket_arn" {
  description = "ARN of the lake (staging) bucket."
  value       = aws_s3_bucket.this["lake"].arn
}

output "rollups_bucket_name" {
  description = "Name of the rollups bucket (hourly candles)."
  value       = aws_s3_bucket.this["rollups"].id
}

output "rollups_bucket_arn" {
  description = "ARN of the rollups bucket."
  value       = aws_s3_bucket.this["rollups"].arn
}

output "athena_results_bucket_name" {
  description = "Name of the bucket where Athena writes query results."
  value       = aws_s3_bucket.this["athena-results"].id
}

output "athena_results_bucket_arn" {
  description = "ARN of the Athena results bucket."
  value       = aws_s3_bucket.this["athena-results"].arn
}

output "glue_scripts_bucket_name" {
  description = "Name of the bucket holding the Glue job's script and library."
  value       = aws_s3_bucket.this["glue-scripts"].id
}

output "glue_scripts_bucket_arn" {
  description = "ARN of the Glue scripts bucket."
  value       = aws_s3_bucket.this["glue-scripts"].arn
}

output "logs_bucket_name" {
  description = "Name of the bucket receiving the other buckets' S3 server access logs (under `<purpose>/`)."
  value       = aws_s3_bucket.this["logs"].id
}

output "logs_bucket_arn" {
  description = "ARN of the access-logs bucket."
  value       = aws_s3_bucket.this["logs"].arn
}
