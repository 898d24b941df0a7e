output "lambda_function_name" {
  description = "Name of the coinbase_api_call function."
  value       = aws_lambda_function.this.function_name
}

output "lambda_function_arn" {
  description = "ARN of the coinbase_api_call function."
  value       = aws_lambda_function.this.arn
}

output "iam_role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.this.arn
}

output "secret_arn" {
  description = "ARN of the Secrets Manager secret for the optional Coinbase API key."
  value       = aws_secretsmanager_secret.this.arn
}

output "event_rule_arn" {
  description = "ARN of the EventBridge schedule rule."
  value       = aws_cloudwatch_event_rule.this.arn
}

output "log_group_name" {
  description = "Name of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "latest_table_name" {
  description = "Name of the DynamoDB table of the latest price per pair (`COINLAKE_LATEST_TABLE`): give it to the api module."
  value       = aws_dynamodb_table.latest.name
}

output "latest_table_arn" {
  description = "ARN of that table (the api module's read grant)."
  value       = aws_dynamodb_table.latest.arn
}
