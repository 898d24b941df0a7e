output "s3_bucket_name" {
  description = "Name of the state bucket: `bucket` in each environment's backend.hcl."
  value       = aws_s3_bucket.this.id
}

output "s3_bucket_arn" {
  description = "ARN of the state bucket (for the deploy role's policy)."
  value       = aws_s3_bucket.this.arn
}

output "s3_bucket_region" {
  description = "Region of the state bucket: `region` in each environment's backend.hcl."
  value       = aws_s3_bucket.this.region
}

output "backend_config" {
  description = "The contents of an environment's backend.hcl for this bucket."
  value       = <<-EOT
    bucket = "${aws_s3_bucket.this.id}"
    region = "${aws_s3_bucket.this.region}"
  EOT
}
