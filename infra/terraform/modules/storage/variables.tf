variable "name_prefix" {
  description = "Prefix of every bucket name (e.g. `coinlake-dev`): buckets are `<prefix>-<purpose>-<account id>`, which keeps them globally unique."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete buckets that still hold objects (every version). Keep false for anything prod-like; true for throwaway stacks."
  type        = bool
  default     = false
}

variable "landing_expiration_days" {
  description = "Days Firehose's landing files (and the producer's dead letters and Firehose's error files, which share the bucket) are kept. The Glue job reads them within the hour; the lake keeps the data."
  type        = number
  default     = 30

  validation {
    condition     = var.landing_expiration_days >= 1 && floor(var.landing_expiration_days) == var.landing_expiration_days
    error_message = "The landing_expiration_days must be a whole number of days, at least 1."
  }
}

variable "athena_results_expiration_days" {
  description = "Days Athena's query results are kept (the API reads a result right after its query)."
  type        = number
  default     = 7

  validation {
    condition     = var.athena_results_expiration_days >= 1 && floor(var.athena_results_expiration_days) == var.athena_results_expiration_days
    error_message = "The athena_results_expiration_days must be a whole number of days, at least 1."
  }
}

variable "logs_expiration_days" {
  description = "Days S3 server access logs are kept in the logs bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.logs_expiration_days >= 1 && floor(var.logs_expiration_days) == var.logs_expiration_days
    error_message = "The logs_expiration_days must be a whole number of days, at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted object version is kept in the versioned buckets (landing, lake, rollups, glue-scripts) before it is removed."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "The noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which an unfinished multipart upload is aborted (its parts cost storage and are invisible), in every bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "The abort_incomplete_multipart_upload_days must be a whole number of days, at least 1."
  }
}

variable "deny_insecure_transport" {
  description = "Give every bucket a policy denying requests over plain HTTP (`aws:SecureTransport` false). Keep true on AWS. Set false only against moto, which ignores policy conditions and so denies every object request to a bucket with this policy."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
