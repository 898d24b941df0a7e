variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `coinlake-dev`): the delivery stream is `<prefix>-delivery`, its role `<prefix>-delivery`, its log group `/aws/kinesisfirehose/<prefix>-delivery`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "kinesis_stream_arn" {
  description = "ARN of the Kinesis stream Firehose reads (the stream module's `kinesis_stream_arn`)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/.+$", var.kinesis_stream_arn))
    error_message = "The kinesis_stream_arn must be a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)."
  }
}

variable "kinesis_kms_key_arn" {
  description = "ARN of the customer-managed KMS key of the stream, if it has one (Firehose then gets kms:Decrypt on it, through Kinesis only). Leave null for the AWS-managed `alias/aws/kinesis`, whose key policy already admits this account's principals."
  type        = string
  default     = null
}

variable "landing_bucket_arn" {
  description = "ARN of the landing bucket Firehose writes to (the storage module's `landing_bucket_arn`)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.landing_bucket_arn))
    error_message = "The landing_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::NAME)."
  }
}

variable "buffering_interval" {
  description = "Seconds Firehose buffers before it writes a file (0-900). With one poll a minute, 60 gives about one landing file per minute; 900 gives four an hour (fewer, larger files for the Glue job)."
  type        = number
  default     = 60

  validation {
    condition     = var.buffering_interval >= 0 && var.buffering_interval <= 900 && floor(var.buffering_interval) == var.buffering_interval
    error_message = "The buffering_interval must be a whole number of seconds from 0 to 900."
  }
}

variable "buffering_size" {
  description = "MiB Firehose buffers before it writes a file (1-128), whichever of size and interval comes first."
  type        = number
  default     = 5

  validation {
    condition     = var.buffering_size >= 1 && var.buffering_size <= 128 && floor(var.buffering_size) == var.buffering_size
    error_message = "The buffering_size must be a whole number of MiB from 1 to 128."
  }
}

variable "error_output_prefix" {
  description = "Key prefix of the records Firehose could not deliver (in the landing bucket, outside the `YYYY/MM/DD/HH/` layout the Glue job reads). Must contain `!{firehose:error-output-type}`."
  type        = string
  default     = "errors/!{firehose:error-output-type}/"

  validation {
    condition     = strcontains(var.error_output_prefix, "!{firehose:error-output-type}") && !startswith(var.error_output_prefix, "/")
    error_message = "The error_output_prefix must contain !{firehose:error-output-type} and must not start with a slash."
  }
}

variable "append_newline" {
  description = "Add Firehose's `AppendDelimiterToRecord` processor (a newline after every record). Off by default: the producer's records already end with a newline (`LandingRecord.to_json_line`), so the landing files are newline-delimited without it and it would double every newline. Turn it on for producers that send bare JSON."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days Firehose's error log group keeps its events (one of CloudWatch Logs' allowed values)."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be one of CloudWatch Logs' values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
