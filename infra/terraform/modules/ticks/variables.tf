variable "name_prefix" {
  description = "Prefix of every resource name (e.g. `coinlake-dev`): the cluster, service, task family, roles, security group and log group are `<prefix>-ticks…`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.name_prefix))
    error_message = "The name_prefix must be 1-32 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "image" {
  description = "The container image running `coinlake ticks-to-kinesis` (built from the repository's Dockerfile, see README), e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/coinlake:1.2.0`. Pin a tag or digest, never `latest`."
  type        = string

  validation {
    condition     = length(var.image) > 0 && !endswith(var.image, ":latest")
    error_message = "The image must be set and pinned to a tag or digest other than latest."
  }
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository holding the image, for the execution role's pull grant; null when the image is public (no pull grant)."
  type        = string
  default     = null
}

variable "kinesis_stream_name" {
  description = "The stream the ticks go to (`COINLAKE_KINESIS_STREAM_NAME` of the container)."
  type        = string
}

variable "kinesis_stream_arn" {
  description = "ARN of that stream: the task role may `kinesis:PutRecords` on it and nothing else."
  type        = string
}

variable "kinesis_kms_key_arn" {
  description = "Customer-managed KMS key of the stream, if any (the task role then gets kms:GenerateDataKey through Kinesis only); null for the AWS-managed key."
  type        = string
  default     = null
}

variable "symbols" {
  description = "Pairs subscribed to (`COINLAKE_SYMBOLS`), e.g. [\"BTC-USD\", \"ETH-USD\"]."
  type        = list(string)

  validation {
    condition     = length(var.symbols) > 0 && alltrue([for s in var.symbols : can(regex("^[A-Z0-9]{1,12}-[A-Z0-9]{1,12}$", s))])
    error_message = "The symbols must be Coinbase pairs such as BTC-USD."
  }
}

variable "ticks_url" {
  description = "The WebSocket feed (`COINLAKE_TICKS__URL`)."
  type        = string
  default     = "wss://ws-feed.exchange.coinbase.com"

  validation {
    condition     = can(regex("^wss?://", var.ticks_url))
    error_message = "The ticks_url must be a ws:// or wss:// URL."
  }
}

variable "vpc_id" {
  description = "VPC of the task's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets the task may run in. They need a way out to the feed and to Kinesis: private subnets with a NAT gateway (and assign_public_ip = false), or public subnets with assign_public_ip = true."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "At least one subnet is needed."
  }
}

variable "assign_public_ip" {
  description = "Give the task a public IP (public subnets without a NAT gateway). The security group admits no inbound traffic either way."
  type        = bool
  default     = false
}

variable "cpu" {
  description = "Fargate CPU units of the task (256 = a quarter vCPU, enough for thousands of ticks a second)."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Fargate memory of the task in MiB (the queue between feed and stream holds at most `COINLAKE_TICKS__QUEUE_SIZE` messages of ~400 bytes)."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64 (Graviton: about 20 % cheaper; build the image for it)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "The cpu_architecture must be X86_64 or ARM64."
  }
}

variable "log_retention_days" {
  description = "Days the container's CloudWatch logs are kept."
  type        = number
  default     = 14
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
}
