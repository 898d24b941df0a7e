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

variable "athena_results_bucket_name" {
  description = "Bucket where Athena writes query results (the storage module's, with its own expiration)."
  type        = string
}

variable "athena_results_bucket_arn" {
  description = "ARN of the results bucket (part of the contract; this module grants nothing itself, the api module's role reads and writes the results)."
  type        = string
}

variable "results_prefix" {
  description = "Folder of the results bucket Athena writes to (the API's `COINLAKE_ATHENA__OUTPUT_LOCATION`). Ends with `/`."
  type        = string
  default     = "athena-results/"

  validation {
    condition     = can(regex("^([A-Za-z0-9_.-]+/)+$", var.results_prefix))
    error_message = "The results_prefix must be a folder such as athena-results/ (ending with /)."
  }
}

variable "bytes_scanned_cutoff_per_query" {
  description = "Bytes one query may scan before Athena cancels it (the per-query data limit; Athena's minimum is 10 MB)."
  type        = number
  default     = 1073741824

  validation {
    condition     = var.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "The bytes_scanned_cutoff_per_query must be at least 10485760 (10 MB), Athena's minimum."
  }
}

variable "force_destroy" {
  description = "Whether `destroy` deletes the workgroup even if it has saved queries or history (true for throwaway stacks)."
  type        = bool
  default     = false
}
