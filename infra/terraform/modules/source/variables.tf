variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `coinlake-dev`): the function, its role and its schedule are `<prefix>-coinbase-api-call`, the secret `<prefix>/coinbase-api-key`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

################################################################################
# Function
################################################################################

variable "package_path" {
  description = "Path of the function's zip, as `make package` writes it (`build/coinbase_api_call.zip`). Its hash decides when the code is updated."
  type        = string

  validation {
    condition     = endswith(var.package_path, ".zip")
    error_message = "The package_path must be the path of a .zip file (make package writes build/coinbase_api_call.zip)."
  }
}

variable "architecture" {
  description = "Instruction set of the function; must match the package (`make package ARCH=...`)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "The architecture must be x86_64 or arm64."
  }
}

variable "timeout" {
  description = "Seconds one invocation may run. The handler stops retrying 3 s before this; keep it under the schedule's period so polls do not overlap."
  type        = number
  default     = 55

  validation {
    condition     = var.timeout >= 10 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "The timeout must be a whole number of seconds from 10 to 900."
  }
}

variable "memory_size" {
  description = "MiB of memory (CPU grows with it)."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "The memory_size must be a whole number of MiB from 128 to 10240."
  }
}

variable "reserved_concurrent_executions" {
  description = "Concurrency reserved for the function, -1 for none. 1 would forbid overlapping polls, but AWS refuses any reservation that leaves the account fewer than 10 unreserved executions (new accounts often have 10 in all)."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions >= -1 && floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions
    error_message = "The reserved_concurrent_executions must be -1 (no reservation) or a whole number >= 0."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing: `PassThrough` (trace only requests that arrive sampled) or `Active` (sample and send traces; adds the X-Ray grants and X-Ray costs)."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "The tracing_mode must be PassThrough or Active."
  }
}

variable "log_retention_days" {
  description = "Days the function's log group keeps its events (one of CloudWatch Logs' allowed values)."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be one of CloudWatch Logs' values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_format" {
  description = "Format of Lambda's own log lines: `JSON` (like the handler's Powertools lines) or `Text`; null leaves the function's logging configuration unset (Lambda's default, Text), e.g. against moto, which does not keep it."
  type        = string
  default     = "JSON"

  validation {
    condition     = var.log_format == null || contains(["JSON", "Text"], coalesce(var.log_format, "JSON"))
    error_message = "The log_format must be JSON, Text or null."
  }
}

################################################################################
# What it polls and where it writes
################################################################################

variable "symbols" {
  description = "Coinbase pairs polled on every run (`COINLAKE_SYMBOLS`)."
  type        = list(string)
  default     = ["BTC-USD", "ETH-USD", "XRP-USD"]

  validation {
    condition     = length(var.symbols) > 0 && alltrue([for s in var.symbols : can(regex("^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$", s))])
    error_message = "The symbols must be a non-empty list of Coinbase pairs such as BTC-USD (upper case)."
  }
}

variable "coinbase_url" {
  description = "Base URL of the Coinbase API (`COINLAKE_COINBASE_URL`)."
  type        = string
  default     = "https://api.coinbase.com"

  validation {
    condition     = can(regex("^https?://[^/\\s]+", var.coinbase_url))
    error_message = "The coinbase_url must be an http(s) URL."
  }
}

variable "schedule_expression" {
  description = "When EventBridge invokes the function: `rate(...)` or `cron(...)`. The handler floors the event's time to `COINLAKE_INTERVAL` (60 s by default): set it in `environment_variables` for a slower schedule."
  type        = string
  default     = "rate(1 minute)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.schedule_expression))
    error_message = "The schedule_expression must be rate(...) or cron(...)."
  }
}

variable "environment_variables" {
  description = "More `COINLAKE_*` settings for the function (e.g. `COINLAKE_MAX_RETRIES`); the module's own variables win on a clash."
  type        = map(string)
  default     = {}
}

variable "kinesis_stream_name" {
  description = "Name of the Kinesis stream the records go to (`COINLAKE_KINESIS_STREAM_NAME`)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,128}$", var.kinesis_stream_name))
    error_message = "The kinesis_stream_name must be a Kinesis stream name (1-128 of letters, digits, _ . -)."
  }
}

variable "kinesis_stream_arn" {
  description = "ARN of that stream (the PutRecords grant)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/.+$", var.kinesis_stream_arn))
    error_message = "The kinesis_stream_arn must be a Kinesis stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)."
  }
}

variable "kinesis_kms_key_arn" {
  description = "ARN of the stream's customer-managed KMS key, if it has one (the function then gets kms:GenerateDataKey on it, through Kinesis only). Leave null for the AWS-managed `alias/aws/kinesis`."
  type        = string
  default     = null
}

variable "dead_letter_bucket_name" {
  description = "Bucket of the dead letters (the landing bucket): rejected Coinbase answers are written under `<dead_letter_prefix>/` (`COINLAKE_DEAD_LETTER_URI`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.dead_letter_bucket_name))
    error_message = "The dead_letter_bucket_name must be an S3 bucket name."
  }
}

variable "dead_letter_bucket_arn" {
  description = "ARN of that bucket (the PutObject grant, on the prefix only)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.dead_letter_bucket_arn))
    error_message = "The dead_letter_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::NAME)."
  }
}

variable "dead_letter_prefix" {
  description = "Key prefix of the dead letters in that bucket (no slashes at either end); outside the `YYYY/MM/DD/HH/` layout the Glue job reads."
  type        = string
  default     = "dead-letter"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.dead_letter_prefix))
    error_message = "The dead_letter_prefix must be a key prefix such as dead-letter (letters, digits, _ . - and inner slashes)."
  }
}

################################################################################
# Secret: the optional Coinbase API key
################################################################################

variable "use_coinbase_secret" {
  description = "Sign the Coinbase requests with the key in the secret (`COINLAKE_COINBASE_SECRET_NAME`). The public spot prices need no key, and the handler fails while the secret holds no value: turn this on once it does (set `secret_string`, or `aws secretsmanager put-secret-value` outside Terraform)."
  type        = bool
  default     = false
}

variable "secret_string" {
  description = "Value of the secret, `{\"api_key\": \"…\", \"api_secret\": \"…\"}` as JSON. Null (the default) creates the secret without a value, so no key is ever in the Terraform state; put the value in with the AWS CLI or console."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.secret_string == null || can(jsondecode(var.secret_string).api_key) && can(jsondecode(var.secret_string).api_secret)
    error_message = "The secret_string must be JSON with the keys api_key and api_secret."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored (7-30), or 0 to delete it at once (throwaway stacks: the name is free again immediately)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30
    error_message = "The secret_recovery_window_days must be 0 or from 7 to 30."
  }
}

################################################################################
# Latest prices table
################################################################################

variable "deletion_protection" {
  description = "Protect the latest-prices table from deletion (turn off for throwaway stacks)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
