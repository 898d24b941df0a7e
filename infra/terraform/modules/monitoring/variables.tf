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

variable "alarm_topic_arn" {
  description = "SNS topic every alarm and the Glue failure rule notify (the alerts module's `sns_topic_arn`). Its key and policy must let cloudwatch.amazonaws.com and events.amazonaws.com publish: the alerts module's `service_publishers`."
  type        = string
}

variable "kinesis_stream_name" {
  description = "The Kinesis Data Stream (the stream module's `kinesis_stream_name`)."
  type        = string
}

variable "firehose_name" {
  description = "The Firehose delivery stream (the delivery module's `firehose_name`)."
  type        = string
}

variable "lambda_function_names" {
  description = "Lambda functions whose errors and throttles raise alarms."
  type        = list(string)

  validation {
    condition     = length(distinct(var.lambda_function_names)) == length(var.lambda_function_names)
    error_message = "The lambda_function_names must not repeat a name."
  }
}

variable "glue_job_name" {
  description = "The Glue job whose FAILED and TIMEOUT runs are sent to the topic (the etl module's `glue_job_name`)."
  type        = string
}

variable "rest_api_name" {
  description = "Name of the REST API (the api module's `rest_api_name`: CloudWatch's `ApiName` dimension)."
  type        = string
}

variable "stage_name" {
  description = "Stage of the REST API."
  type        = string
}

################################################################################
# Thresholds
################################################################################

variable "iterator_age_ms" {
  description = "Kinesis iterator age (ms) at or above which the consumer counts as behind (3 of 5 minutes)."
  type        = number
  default     = 60000
}

variable "put_records_success_min" {
  description = "Lowest acceptable share (0-1) of records put to Kinesis that succeed, over 5 minutes."
  type        = number
  default     = 0.95

  validation {
    condition     = var.put_records_success_min > 0 && var.put_records_success_min <= 1
    error_message = "The put_records_success_min must be in (0, 1]."
  }
}

variable "data_freshness_seconds" {
  description = "Firehose `DeliveryToS3.DataFreshness` (s) above which delivery counts as late."
  type        = number
  default     = 900
}

variable "api_latency_p99_ms" {
  description = "API Gateway p99 latency (ms) above which the API counts as slow (3 periods of 5 minutes)."
  type        = number
  default     = 2000
}

variable "api_5xx_max" {
  description = "5xx answers per 5 minutes tolerated before the alarm fires."
  type        = number
  default     = 0
}
