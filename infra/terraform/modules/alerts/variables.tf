variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `coinlake-dev`): the topic is `<prefix>-alerts`, the table `<prefix>-alert-rules`, the policy `<prefix>-alerts`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "alert_emails" {
  description = "Email addresses subscribed to the alerts topic (the original's single `endpoint`, as a list). Each address gets a confirmation mail from SNS and receives nothing until it confirms."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "Every entry of alert_emails must be an email address such as alerts@example.com."
  }

  validation {
    condition     = length(distinct(var.alert_emails)) == length(var.alert_emails)
    error_message = "The alert_emails list must not repeat an address."
  }
}

variable "deletion_protection" {
  description = "Whether the rule-state table is protected from deletion. Keep true for anything prod-like (losing the table re-arms every rule, so alerts fire again); set false for throwaway test stacks."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}

################################################################################
# Publishers other than the Lambda
################################################################################

variable "service_publishers" {
  description = "AWS service principals of this account that may publish to the topic, e.g. [\"cloudwatch.amazonaws.com\", \"events.amazonaws.com\"] for the monitoring module's alarms and Glue rule. Non-empty: the topic moves to a customer-managed KMS key (rotated) that lets them, since the AWS-managed SNS key cannot."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.service_publishers : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", s))])
    error_message = "Every service_publishers entry must be a service principal such as events.amazonaws.com."
  }
}

################################################################################
# The Lambda lambda_triggering_sns (created when package_path is set)
################################################################################

variable "package_path" {
  description = "The zip `make package` writes for the function (`build/lambda_triggering_sns.zip`). Null: no function and no bucket notification (the topic, table and policy only)."
  type        = string
  default     = null
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

variable "landing_bucket_name" {
  description = "The landing bucket (Firehose's): its ObjectCreated events invoke the function. This module owns the bucket's notification configuration (S3 has one per bucket)."
  type        = string
  default     = null
}

variable "landing_bucket_arn" {
  description = "ARN of the landing bucket (the function reads its objects)."
  type        = string
  default     = null
}

variable "notification_filter_prefix" {
  description = "Only objects whose key starts with this invoke the function. Firehose's keys start with the year (`YYYY/MM/DD/HH/`), so the default `2` leaves out `dead-letter/`, `errors/` and anything else written there. Empty: every object."
  type        = string
  default     = "2"
}

variable "btc_threshold" {
  description = "The seed's BTC alert: notify when BTC-USD crosses up to this price (USD) or more, once per crossing. Used when `rules` is null."
  type        = number
  default     = 100000

  validation {
    condition     = var.btc_threshold > 0
    error_message = "The btc_threshold must be a positive price."
  }
}

variable "rules" {
  description = "Alert rules (`COINLAKE_ALERTS__RULES`, see `coinlake.alerts.config.AlertRule`: one of above, below, move_pct + window_seconds). Null: one rule from `btc_threshold`."
  type = list(object({
    name             = string
    crypto           = string
    currency         = optional(string)
    above            = optional(number)
    below            = optional(number)
    move_pct         = optional(number)
    window_seconds   = optional(number)
    hysteresis       = optional(number)
    cooldown_seconds = optional(number)
    channels         = optional(list(string), ["sns"])
  }))
  default = null

  validation {
    condition = var.rules == null ? true : alltrue([for r in var.rules :
      length([for c in [r.above, r.below, r.move_pct] : c if c != null]) == 1 && can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", r.name))
    ])
    error_message = "Every rule needs a name (letters, digits, _ . -) and exactly one of above, below, move_pct."
  }
}

variable "notify_file_landed" {
  description = "Also publish a notification for every landing object (the seed's behaviour), not only rule crossings."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days the function's log group keeps its events."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}
