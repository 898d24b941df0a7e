variable "region" {
  description = "AWS region of the state bucket (the environments' `backend.hcl` names the same region)."
  type        = string
  default     = "eu-west-1"
}

variable "bucket_name" {
  description = "Name of the state bucket. Bucket names are global: the default `null` makes `<project>-tfstate-<account id>-<region>`, which is unique."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "The bucket_name must be 3-63 characters of lowercase letters, digits, dots and hyphens."
  }
}

variable "project" {
  description = "Project name, used in the default bucket name and the `project` tag."
  type        = string
  default     = "coinlake"
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten state version is kept before it expires (older states to roll back to)."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "The noncurrent_version_expiration_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Whether `terraform destroy` may delete the bucket with every state in it. Keep false; tests set true."
  type        = bool
  default     = false
}
