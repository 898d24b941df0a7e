data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id   = data.aws_caller_identity.current.account_id
  account_root = "arn:${data.aws_partition.current.partition}:iam::${local.account_id}:root"

  # AWS services cannot use the AWS-managed SNS key: publishers such as CloudWatch alarms
  # and EventBridge rules need the topic on a customer-managed key whose policy lets them.
  create_kms_key  = length(var.service_publishers) > 0
  create_function = var.package_path != null
}

################################################################################
# SNS topic: where the alerts Lambda publishes
################################################################################

resource "aws_sns_topic" "this" {
  name = "${var.name_prefix}-alerts"

  # The AWS-managed key: nothing to manage, but only principals of this account can
  # publish through it (AWS services such as CloudWatch alarms or S3 events cannot);
  # with `service_publishers`, the module's own key, which lets them.
  kms_master_key_id = local.create_kms_key ? aws_kms_key.this[0].arn : "alias/aws/sns"

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

  # CloudWatch alarms, EventBridge rules, ... of this account (the monitoring module's).
  dynamic "statement" {
    for_each = local.create_kms_key ? [1] : []
    content {
      sid       = "ServicesOfThisAccount"
      effect    = "Allow"
      actions   = ["SNS:Publish"]
      resources = [aws_sns_topic.this.arn]

      principals {
        type        = "Service"
        identifiers = var.service_publishers
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
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
  #checkov:skip=CKV_AWS_119:Encrypted with the AWS-managed DynamoDB key; the table holds rule names, last prices and timestamps (public market data), not worth a customer-managed key's monthly and per-request cost.
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

  # Publishing to a topic on a customer-managed key encrypts with that key.
  dynamic "statement" {
    for_each = local.create_kms_key ? [1] : []
    content {
      sid       = "TopicKey"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [aws_kms_key.this[0].arn]
    }
  }
}

resource "aws_iam_policy" "this" {
  name        = "${var.name_prefix}-alerts"
  description = "coinlake alerts Lambda: publish to the alerts topic, read and write rule state."
  policy      = data.aws_iam_policy_document.this.json

  tags = var.tags
}
