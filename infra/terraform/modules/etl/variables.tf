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
# Code
################################################################################

variable "script_path" {
  description = "Local path of the Glue job's script (`glue/ETL_script.py`); uploaded to `s3://<glue_scripts_bucket>/glue/<file name>`."
  type        = string
}

variable "library_path" {
  description = "Local path of the coinlake wheel installed with `--additional-python-modules`; uploaded to `s3://<glue_scripts_bucket>/glue/lib/<file name>` (pip needs a wheel's file name intact)."
  type        = string
}

################################################################################
# Buckets (the storage module's outputs)
################################################################################

variable "glue_scripts_bucket_name" {
  description = "Bucket holding the job's script and library."
  type        = string
}

variable "glue_scripts_bucket_arn" {
  description = "ARN of the scripts bucket (the role reads `glue/*` in it)."
  type        = string
}

variable "landing_bucket_name" {
  description = "Bucket Firehose writes to (`YYYY/MM/DD/HH/`): the job's input (`--landing_uri s3://<bucket>/`)."
  type        = string
}

variable "landing_bucket_arn" {
  description = "ARN of the landing bucket."
  type        = string
}

variable "lake_bucket_name" {
  description = "Bucket of the Hive-partitioned Parquet lake (`--lake_uri`, the `spot_prices` table's location)."
  type        = string
}

variable "lake_bucket_arn" {
  description = "ARN of the lake bucket."
  type        = string
}

variable "rollups_bucket_name" {
  description = "Bucket of the rollups (`--rollups_uri`; the `candles_1h` table lives in its `candles_1h/` folder)."
  type        = string
}

variable "rollups_bucket_arn" {
  description = "ARN of the rollups bucket."
  type        = string
}

variable "dead_letter_prefix" {
  description = "Folder of the landing bucket for the job's dead letters (`--dead_letter_uri`; the job writes under `<prefix>etl/spark/`). Ends with `/`."
  type        = string
  default     = "dead-letter/"

  validation {
    condition     = can(regex("^([A-Za-z0-9_.-]+/)+$", var.dead_letter_prefix))
    error_message = "The dead_letter_prefix must be a folder such as dead-letter/ (ending with /)."
  }
}

################################################################################
# Catalog
################################################################################

variable "database_name" {
  description = "Glue database holding `spot_prices` and `candles_1h` (the API's `COINLAKE_ATHENA__DATABASE`)."
  type        = string
  default     = "coinlake"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,127}$", var.database_name))
    error_message = "The database_name must be a Glue name: lowercase letters, digits and underscores, not starting with a digit."
  }
}

variable "cryptos" {
  description = "Crypto codes Athena projects as partitions (`projection.crypto.values`): those the producer polls. A crypto missing here is invisible to Athena."
  type        = list(string)
  default     = ["BTC", "ETH", "XRP"]

  validation {
    condition     = length(var.cryptos) > 0 && alltrue([for c in var.cryptos : can(regex("^[A-Z0-9]{1,12}$", c))]) && length(distinct(var.cryptos)) == length(var.cryptos)
    error_message = "The cryptos must be distinct codes such as BTC (1-12 uppercase letters or digits), at least one."
  }
}

variable "projection_years" {
  description = "First and last year Athena projects (`projection.year.range`). Keep it tight: a query without time bounds enumerates every projected partition."
  type        = list(number)
  default     = [2024, 2040]

  validation {
    condition     = length(var.projection_years) == 2 && var.projection_years[0] >= 1970 && var.projection_years[0] <= var.projection_years[1] && var.projection_years[1] <= 9999
    error_message = "The projection_years must be [first, last] with 1970 <= first <= last <= 9999."
  }
}

################################################################################
# Job
################################################################################

variable "schedule_expression" {
  description = "When the job runs (a Glue SCHEDULED trigger, cron in UTC): by default five minutes past every hour, after Firehose closed the hour's objects."
  type        = string
  default     = "cron(5 * * * ? *)"

  validation {
    condition     = can(regex("^cron\\(.+\\)$", var.schedule_expression))
    error_message = "The schedule_expression must be a Glue cron expression such as cron(5 * * * ? *)."
  }
}

variable "schedule_enabled" {
  description = "Whether the schedule starts runs (false: the job runs only when started by hand)."
  type        = bool
  default     = true
}

variable "worker_type" {
  description = "Glue worker type (G.1X: 4 vCPU, 16 GB)."
  type        = string
  default     = "G.1X"

  validation {
    condition     = contains(["G.1X", "G.2X", "G.4X", "G.8X"], var.worker_type)
    error_message = "The worker_type must be one of G.1X, G.2X, G.4X, G.8X."
  }
}

variable "number_of_workers" {
  description = "Glue workers per run (2 is Glue's minimum for Spark jobs)."
  type        = number
  default     = 2

  validation {
    condition     = var.number_of_workers >= 2 && var.number_of_workers <= 100
    error_message = "The number_of_workers must be between 2 and 100."
  }
}

variable "timeout_minutes" {
  description = "Minutes before a run is stopped (and counted as TIMEOUT). Under an hour, so a stuck run does not block the next scheduled one for long."
  type        = number
  default     = 45

  validation {
    condition     = var.timeout_minutes >= 1 && var.timeout_minutes <= 2880
    error_message = "The timeout_minutes must be between 1 and 2880."
  }
}

variable "max_retries" {
  description = "Retries of a failed run. A retry is safe (the bookmark moves only on commit; the anti-join adds nothing twice)."
  type        = number
  default     = 1

  validation {
    condition     = var.max_retries >= 0 && var.max_retries <= 10
    error_message = "The max_retries must be between 0 and 10."
  }
}

variable "log_retention_days" {
  description = "Days the job's CloudWatch log group keeps its events."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}
