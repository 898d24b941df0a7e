output "api_invoke_url" {
  description = "Base URL of the API (`https://<id>.execute-api.<region>.amazonaws.com/<stage>`); send the key in x-api-key."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "rest_api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "rest_api_name" {
  description = "Name of the REST API (the `ApiName` dimension of its CloudWatch metrics: the monitoring module's `rest_api_name`)."
  value       = aws_api_gateway_rest_api.this.name
}

output "stage_name" {
  description = "Name of the stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "api_key_ids" {
  description = "API key IDs by name (the values are not output: `aws apigateway get-api-key --include-value --api-key <id>`)."
  value       = { for name, key in aws_api_gateway_api_key.this : name => key.id }
}

output "usage_plan_ids" {
  description = "Usage plan IDs by name."
  value       = { for name, plan in aws_api_gateway_usage_plan.this : name => plan.id }
}

output "lambda_function_name" {
  description = "Name of the Lambda query_athena."
  value       = aws_lambda_function.this.function_name
}

output "lambda_function_arn" {
  description = "ARN of the Lambda query_athena."
  value       = aws_lambda_function.this.arn
}

output "iam_role_arn" {
  description = "ARN of the Lambda's role."
  value       = aws_iam_role.this.arn
}

output "access_log_group_name" {
  description = "CloudWatch log group of the stage's access log."
  value       = aws_cloudwatch_log_group.access.name
}
