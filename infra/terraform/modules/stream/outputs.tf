output "kinesis_stream_name" {
  description = "Name of the Kinesis stream (`COINLAKE_KINESIS_STREAM_NAME` of the producer)."
  value       = aws_kinesis_stream.this.name
}

output "kinesis_stream_arn" {
  description = "ARN of the Kinesis stream (Firehose's source; the producer's PutRecords grant)."
  value       = aws_kinesis_stream.this.arn
}
