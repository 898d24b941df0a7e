output "sns_topic_arn" {
  description = "ARN of the alerts SNS topic."
  value       = aws_sns_topic.this.arn
}

output "dynamodb_table_name" {
  description = "Name of the rule-state DynamoDB table."
  value       = aws_dynamodb_table.this.name
}

output "dynamodb_table_arn" {
  description = "ARN of the rule-state DynamoDB table."
  value       = aws_dynamodb_table.this.arn
}

output "iam_policy_arn" {
  description = "ARN of the least-privilege policy to attach to the alerts Lambda's role."
  value       = aws_iam_policy.this.arn
}

output "lambda_environment" {
  description = "Environment variables of the alerts Lambda (lambda_triggering_sns), ready to merge into its environment."
  value = {
    COINLAKE_ALERTS__RULES_TABLE   = aws_dynamodb_table.this.name
    COINLAKE_ALERTS__SNS_TOPIC_ARN = aws_sns_topic.this.arn
  }
}

output "lambda_function_name" {
  description = "Name of the Lambda lambda_triggering_sns (null without package_path)."
  value       = try(aws_lambda_function.this[0].function_name, null)
}

output "lambda_function_arn" {
  description = "ARN of the Lambda lambda_triggering_sns (null without package_path)."
  value       = try(aws_lambda_function.this[0].arn, null)
}

output "iam_role_arn" {
  description = "ARN of the Lambda's role (null without package_path)."
  value       = try(aws_iam_role.this[0].arn, null)
}

output "dead_letter_queue_arn" {
  description = "SQS queue of events that failed every retry (null without package_path)."
  value       = try(aws_sqs_queue.this[0].arn, null)
}

output "kms_key_arn" {
  description = "The topic's customer-managed key (null unless service_publishers is set)."
  value       = try(aws_kms_key.this[0].arn, null)
}
