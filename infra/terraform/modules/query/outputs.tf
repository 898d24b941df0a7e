output "athena_workgroup_name" {
  description = "Name of the Athena workgroup (the API's `COINLAKE_ATHENA__WORKGROUP`)."
  value       = aws_athena_workgroup.this.name
}

output "athena_workgroup_arn" {
  description = "ARN of the Athena workgroup."
  value       = aws_athena_workgroup.this.arn
}

output "athena_output_location" {
  description = "Where the workgroup writes query results (the API's `COINLAKE_ATHENA__OUTPUT_LOCATION`)."
  value       = aws_athena_workgroup.this.configuration[0].result_configuration[0].output_location
}
