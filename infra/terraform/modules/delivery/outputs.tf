output "firehose_name" {
  description = "Name of the Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.this.name
}

output "firehose_arn" {
  description = "ARN of the Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.this.arn
}

output "iam_role_arn" {
  description = "ARN of Firehose's role (reads the stream, writes the landing bucket, logs errors)."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "Name of the CloudWatch log group of Firehose's delivery errors."
  value       = aws_cloudwatch_log_group.this.name
}
