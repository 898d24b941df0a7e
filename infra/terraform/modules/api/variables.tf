variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `coinlake-dev`)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}

################################################################################
# Function
################################################################################

variable "package_path" {
  description = "The zip `make package` writes for the function (`build/query_athena.zip`)."
  type        = string
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

variable "memory_size" {
  description = "Memory of the function in MB (CPU grows with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "The memory_size must be between 128 and 10240 MB."
  }
}

variable "log_retention_days" {
  description = "Days the function's and the stage's log groups keep their events."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

################################################################################
# What the function queries (the query, etl and storage modules' outputs)
################################################################################

variable "athena_workgroup_name" {
  description = "Athena workgroup the queries run in (`COINLAKE_ATHENA__WORKGROUP`)."
  type        = string
}

variable "athena_workgroup_arn" {
  description = "ARN of that workgroup (the only one the role may use)."
  type        = string
}

variable "athena_output_location" {
  description = "`s3://` folder for query results (`COINLAKE_ATHENA__OUTPUT_LOCATION`); null: the workgroup's own (it enforces its configuration)."
  type        = string
  default     = null
}

variable "glue_database_name" {
  description = "Glue database of the tables (`COINLAKE_ATHENA__DATABASE`)."
  type        = string
}

variable "spot_prices_table_name" {
  description = "The raw prices table (the role may read its definition)."
  type        = string
  default     = "spot_prices"
}

variable "candles_table_name" {
  description = "The hourly candles table (`COINLAKE_ATHENA__ROLLUP_TABLE`)."
  type        = string
  default     = "candles_1h"
}

variable "lake_bucket_arn" {
  description = "ARN of the lake bucket (Athena reads it with the function's permissions)."
  type        = string
}

variable "rollups_bucket_arn" {
  description = "ARN of the rollups bucket."
  type        = string
}

variable "athena_results_bucket_arn" {
  description = "ARN of the Athena results bucket (the role reads and writes `athena_results_prefix` in it)."
  type        = string
}

variable "athena_results_prefix" {
  description = "Folder of the results bucket the workgroup writes to (the query module's `results_prefix`)."
  type        = string
  default     = "athena-results/"
}

variable "latest_table_name" {
  description = "The source module's latest-prices DynamoDB table (`COINLAKE_LATEST_TABLE`): /v1/prices/latest answers from it, seconds after a poll, instead of Athena. Null: Athena only."
  type        = string
  default     = null
}

variable "latest_table_arn" {
  description = "ARN of that table (the function's dynamodb:Query grant); set it with latest_table_name."
  type        = string
  default     = null

  validation {
    condition     = var.latest_table_arn == null || can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]+$", coalesce(var.latest_table_arn, "x")))
    error_message = "The latest_table_arn must be a DynamoDB table ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)."
  }
}

################################################################################
# API
################################################################################

variable "stage_name" {
  description = "Stage of the REST API (the last part of the invoke URL)."
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.stage_name))
    error_message = "The stage_name must be 1-128 letters, digits, underscores or hyphens."
  }
}

variable "usage_plans" {
  description = "Usage plans by name: throttle (`rate_limit` requests per second, `burst_limit`) and quota (`quota_limit` requests per `quota_period`: DAY, WEEK or MONTH)."
  type = map(object({
    rate_limit   = number
    burst_limit  = number
    quota_limit  = number
    quota_period = string
  }))
  default = {
    basic = { rate_limit = 10, burst_limit = 20, quota_limit = 10000, quota_period = "DAY" }
  }

  validation {
    condition = alltrue([for p in values(var.usage_plans) :
      p.rate_limit > 0 && p.burst_limit >= 1 && p.quota_limit >= 1 && contains(["DAY", "WEEK", "MONTH"], p.quota_period)
    ])
    error_message = "Every usage plan needs rate_limit > 0, burst_limit >= 1, quota_limit >= 1 and quota_period DAY, WEEK or MONTH."
  }

  validation {
    condition     = alltrue([for name in keys(var.usage_plans) : can(regex("^[a-z0-9][a-z0-9-]{0,31}$", name))])
    error_message = "Usage plan names must be 1-32 lowercase letters, digits or hyphens."
  }
}

variable "api_keys" {
  description = "API keys by name, each mapped to the usage plan it belongs to. API Gateway generates the values (`aws apigateway get-api-key --include-value --api-key <id>`)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.api_keys) : can(regex("^[a-z0-9][a-z0-9-]{0,63}$", name))])
    error_message = "API key names must be 1-64 lowercase letters, digits or hyphens."
  }
}

variable "execution_logging_level" {
  description = "API Gateway execution logging (OFF, ERROR or INFO); ERROR logs failed requests only."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.execution_logging_level)
    error_message = "The execution_logging_level must be OFF, ERROR or INFO."
  }
}

variable "manage_account_cloudwatch_role" {
  description = "Whether this module sets the region's API Gateway account setting (the role API Gateway writes logs with; access logging needs it). It is one setting per account and region: keep true in exactly one stack there, false in the others."
  type        = bool
  default     = true
}
