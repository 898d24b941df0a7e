# The same file in environments/dev and environments/prod (a test checks they are equal);
# the environments differ only in terraform.tfvars, backend.tf (the state key) and README.
# Names kept from the seed: `environment`, `endpoint`, `kinesis_stream_mode`,
# `kinesis_stream_retention_period`, `stage_name`, `rate_limit`, `burst_limit`, `quota_limit`.

################################################################################
# Common
################################################################################

variable "region" {
  description = "AWS region of every resource (the seed deployed to eu-west-1)."
  type        = string
  default     = "eu-west-1"
}

variable "project" {
  description = "Project name: the first part of every resource name and the `project` tag."
  type        = string
  default     = "coinlake"
}

variable "environment" {
  description = "Environment name (`dev`, `prod`): the `environment` tag and, after the project, every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]{1,10}$", var.environment))
    error_message = "The environment must be 1-10 lowercase letters or digits (e.g. dev, prod)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name; `null` makes `<project>-<environment>`. Set it to run a second copy of an environment in the same account (tests, previews)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags for every resource (the provider adds project, environment and managed-by)."
  type        = map(string)
  default     = {}
}

variable "build_dir" {
  description = "Where `make package` wrote the Lambda zips (`<function>.zip`) and the coinlake wheel; relative paths are relative to this directory."
  type        = string
  default     = "../../../../build"
}

variable "glue_script_path" {
  description = "The Glue job's script."
  type        = string
  default     = "../../../../glue/ETL_script.py"
}

variable "glue_library_path" {
  description = "The coinlake wheel the Glue job installs (`--additional-python-modules`); `null` takes the one wheel `coinlake-*.whl` in build_dir."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days the Lambda functions' CloudWatch logs are kept (the seed's kinesis_firehose_logging_retention_period)."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Protect stateful resources from `terraform destroy` (the alert rule-state table). True in prod."
  type        = bool
  default     = true
}

################################################################################
# storage
################################################################################

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty buckets (landing, lake, rollups…). Only for throwaway environments."
  type        = bool
  default     = false
}

variable "landing_expiration_days" {
  description = "Days a landing object (Firehose output, dead letters) is kept; the lake keeps the data."
  type        = number
  default     = 30
}

variable "athena_results_expiration_days" {
  description = "Days Athena query results are kept."
  type        = number
  default     = 7
}

variable "logs_expiration_days" {
  description = "Days S3 access logs are kept."
  type        = number
  default     = 90
}

variable "noncurrent_version_expiration_days" {
  description = "Days an overwritten or deleted object version is kept in the versioned buckets."
  type        = number
  default     = 30
}

################################################################################
# stream, delivery, source
################################################################################

variable "kinesis_stream_mode" {
  description = "Kinesis capacity mode (the seed's): ON_DEMAND (pays per stream-hour and per GB) or PROVISIONED (pays per shard-hour)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.kinesis_stream_mode)
    error_message = "The kinesis_stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "kinesis_shard_count" {
  description = "Shards of a PROVISIONED stream (one takes 1,000 records/s; coinlake puts a few a minute)."
  type        = number
  default     = 1
}

variable "kinesis_stream_retention_period" {
  description = "Hours a record stays on the stream (the seed's name; 24..8760, above 24 costs extra)."
  type        = number
  default     = 24

  validation {
    condition     = var.kinesis_stream_retention_period >= 24 && var.kinesis_stream_retention_period <= 8760
    error_message = "The kinesis_stream_retention_period must be between 24 and 8760 hours."
  }
}

variable "firehose_buffering_interval" {
  description = "Seconds Firehose buffers before writing a landing object (0..900)."
  type        = number
  default     = 60
}

variable "firehose_buffering_size" {
  description = "MiB Firehose buffers before writing a landing object (1..128)."
  type        = number
  default     = 5
}

variable "symbols" {
  description = "Pairs the producer polls (`BASE-QUOTE`); the Glue tables' crypto projection is their bases."
  type        = list(string)
  default     = ["BTC-USD", "ETH-USD", "XRP-USD"]

  validation {
    condition     = length(var.symbols) > 0 && alltrue([for s in var.symbols : can(regex("^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$", s))])
    error_message = "Every symbol must look like BTC-USD (uppercase letters or digits, a hyphen, the quote currency)."
  }
}

variable "poll_schedule_expression" {
  description = "EventBridge schedule of the producer Lambda."
  type        = string
  default     = "rate(1 minute)"
}

variable "coinbase_url" {
  description = "Base URL of the Coinbase API the producer polls."
  type        = string
  default     = "https://api.coinbase.com"
}

################################################################################
# etl, query
################################################################################

variable "etl_schedule_expression" {
  description = "When the Glue job runs (each run is billed at least one minute per DPU)."
  type        = string
  default     = "cron(5 * * * ? *)"
}

variable "glue_worker_type" {
  description = "Glue worker type (G.1X: 1 DPU, 4 vCPU, 16 GB)."
  type        = string
  default     = "G.1X"
}

variable "glue_number_of_workers" {
  description = "Glue workers per run (2 is Glue's minimum for G.1X)."
  type        = number
  default     = 2
}

variable "glue_projection_years" {
  description = "First and last year of the Glue tables' partition projection."
  type        = list(number)
  default     = [2024, 2040]
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Athena cancels a query of the workgroup that would scan more than this many bytes (the bill's ceiling per query)."
  type        = number
  default     = 1073741824
}

################################################################################
# api
################################################################################

variable "stage_name" {
  description = "API Gateway stage (the seed's name; part of the URL)."
  type        = string
  default     = "v1"
}

variable "rate_limit" {
  description = "Steady requests per second of the `standard` usage plan (the seed's name)."
  type        = number
  default     = 20
}

variable "burst_limit" {
  description = "Burst of requests of the `standard` usage plan (the seed's name)."
  type        = number
  default     = 20
}

variable "quota_limit" {
  description = "Requests per quota_period of the `standard` usage plan (the seed's name)."
  type        = number
  default     = 100
}

variable "quota_period" {
  description = "Period of quota_limit: DAY, WEEK or MONTH."
  type        = string
  default     = "DAY"

  validation {
    condition     = contains(["DAY", "WEEK", "MONTH"], var.quota_period)
    error_message = "The quota_period must be DAY, WEEK or MONTH."
  }
}

variable "extra_usage_plans" {
  description = "Usage plans besides `standard` (name -> limits)."
  type = map(object({
    rate_limit   = number
    burst_limit  = number
    quota_limit  = number
    quota_period = string
  }))
  default = {}
}

variable "api_keys" {
  description = "API keys to create (name -> usage plan name). Read a key's value with `aws apigateway get-api-key --api-key ID --include-value`."
  type        = map(string)
  default     = { default = "standard" }
}

################################################################################
# alerts, monitoring
################################################################################

variable "endpoint" {
  description = "The seed's single alert email address (`null`: none); joined to alert_emails."
  type        = string
  default     = null
}

variable "alert_emails" {
  description = "Email addresses subscribed to the alerts topic; each must confirm the mail SNS sends."
  type        = list(string)
  default     = []
}

variable "btc_threshold" {
  description = "BTC price (USD) above which the alerts Lambda notifies (the seed's threshold)."
  type        = number
  default     = 100000
}

variable "iterator_age_ms" {
  description = "Alarm when the stream's oldest unread record is older than this (ms)."
  type        = number
  default     = 60000
}

variable "put_records_success_min" {
  description = "Alarm when the share of successful PutRecords falls below this (0..1)."
  type        = number
  default     = 0.95
}

variable "data_freshness_seconds" {
  description = "Alarm when Firehose's oldest undelivered record is older than this (s)."
  type        = number
  default     = 900
}

variable "api_latency_p99_ms" {
  description = "Alarm when the API's p99 latency is above this (ms)."
  type        = number
  default     = 2000
}

variable "deny_insecure_transport" {
  description = "Whether every bucket refuses requests not made over TLS. Keep true on AWS; the tests set false against moto, which ignores policy conditions and would refuse every request."
  type        = bool
  default     = true
}

variable "lambda_log_format" {
  description = "Log format of the producer Lambda (`JSON` or `Text`); null leaves the Lambda's default (the tests against moto, which does not store it)."
  type        = string
  default     = "JSON"
}

variable "use_coinbase_secret" {
  description = "Whether the producer signs its Coinbase requests with the key in the stack's secret. Put a value in the secret first (`aws secretsmanager put-secret-value`): a secret without one fails every poll."
  type        = bool
  default     = false
}

################################################################################
# ticks (modules/ticks): the WebSocket feed's ticks from an always-on Fargate task
################################################################################

variable "enable_ticks" {
  description = "Run the ticks consumer (an ECS Fargate service, about 9 USD a month plus one Kinesis record per tick). Needs ticks_image, ticks_vpc_id and ticks_subnet_ids."
  type        = bool
  default     = false
}

variable "ticks_image" {
  description = "The coinlake image the ticks task runs (built from the repository's Dockerfile), pinned to a tag or digest."
  type        = string
  default     = null
}

variable "ticks_ecr_repository_arn" {
  description = "ECR repository of ticks_image (the task may pull from it); null for a public image."
  type        = string
  default     = null
}

variable "ticks_vpc_id" {
  description = "VPC of the ticks task."
  type        = string
  default     = null
}

variable "ticks_subnet_ids" {
  description = "Subnets of the ticks task, with a way out to the internet (NAT, or public with ticks_assign_public_ip)."
  type        = list(string)
  default     = []
}

variable "ticks_assign_public_ip" {
  description = "Give the ticks task a public IP (public subnets without a NAT gateway)."
  type        = bool
  default     = false
}
