variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `coinlake-dev`): the stream is `<prefix>-stream`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "stream_mode" {
  description = "Capacity mode: `ON_DEMAND` (scales by itself, billed per GB and per stream-hour) or `PROVISIONED` (`shard_count` shards, billed per shard-hour; cheapest for a steady trickle such as one poll a minute)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "The stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Shards of a PROVISIONED stream (each takes 1 MB/s or 1,000 records/s). Ignored ON_DEMAND."
  type        = number
  default     = 1

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count
    error_message = "The shard_count must be a whole number from 1 to 500."
  }
}

variable "retention_hours" {
  description = "Hours the stream keeps a record (24 is included in the price; up to 8,760 = 365 days, billed extra). Firehose normally reads within seconds: this is how long an outage of delivery can last without losing data."
  type        = number
  default     = 24

  validation {
    condition     = var.retention_hours >= 24 && var.retention_hours <= 8760 && floor(var.retention_hours) == var.retention_hours
    error_message = "The retention_hours must be a whole number from 24 to 8760."
  }
}

variable "kms_key_id" {
  description = "KMS key that encrypts the stream at rest: the AWS-managed `alias/aws/kinesis` (no key policy to manage; this account's principals may use it through Kinesis) or the ARN or alias of a customer-managed key (then the producer and Firehose need kms grants on it: pass its ARN as `kinesis_kms_key_arn` to the source and delivery modules)."
  type        = string
  default     = "alias/aws/kinesis"

  validation {
    condition     = can(regex("^(alias/[A-Za-z0-9/_-]+|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+|[0-9a-f-]{36})$", var.kms_key_id))
    error_message = "The kms_key_id must be a KMS key id, key ARN, alias name (alias/...) or alias ARN."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
