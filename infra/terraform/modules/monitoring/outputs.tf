output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_names" {
  description = "Names of every CloudWatch alarm the module made."
  value       = local.alarm_names
}

output "glue_failure_rule_arn" {
  description = "ARN of the EventBridge rule sending failed Glue runs to the topic."
  value       = aws_cloudwatch_event_rule.glue_job_failed.arn
}
