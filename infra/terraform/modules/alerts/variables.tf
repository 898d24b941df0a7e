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
