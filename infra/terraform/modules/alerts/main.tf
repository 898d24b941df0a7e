data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

################################################################################
# SNS topic: where the alerts Lambda publishes
################################################################################

resource "aws_sns_topic" "this" {
  name = "${var.name_prefix}-alerts"

  # The AWS-managed key: nothing to manage, but only principals of this account can
  # publish through it (AWS services such as CloudWatch alarms or S3 events cannot).
  kms_master_key_id = "alias/aws/sns"

  tags = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid    = "AccountOnly"
    effect = "Allow"

    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }

    actions = [
      "SNS:GetTopicAttributes",
      "SNS:SetTopicAttributes",
      "SNS:AddPermission",
      "SNS:RemovePermission",
      "SNS:DeleteTopic",
      "SNS:Subscribe",
      "SNS:ListSubscriptionsByTopic",
      "SNS:Publish",
    ]
    resources = [aws_sns_topic.this.arn]
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alert_emails)

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = each.value
}

################################################################################
# DynamoDB table: rule state (coinlake.alerts.store.DynamoRuleStore)
################################################################################

resource "aws_dynamodb_table" "this" {
  name         = "${var.name_prefix}-alert-rules"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "rule"

  attribute {
    name = "rule"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  # Encrypted with the AWS-managed key `alias/aws/dynamodb`.
  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.deletion_protection

  tags = var.tags
}

################################################################################
# IAM policy for the alerts Lambda's role: publish here, read and write rule state
################################################################################

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "PublishAlerts"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }

  # DynamoRuleStore.load is GetItem (consistent read); save is a conditional PutItem.
  statement {
    sid       = "RuleState"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.this.arn]
  }
}

resource "aws_iam_policy" "this" {
  name        = "${var.name_prefix}-alerts"
  description = "coinlake alerts Lambda: publish to the alerts topic, read and write rule state."
  policy      = data.aws_iam_policy_document.this.json

  tags = var.tags
}
