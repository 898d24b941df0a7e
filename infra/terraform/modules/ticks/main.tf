# The ticks consumer: one always-on Fargate task running `coinlake ticks-to-kinesis`, which
# keeps a WebSocket connection to the Coinbase Exchange feed and puts its ticks on the
# pipeline's Kinesis stream (a Lambda cannot hold a connection for days).

data "aws_region" "current" {}

locals {
  name      = "${var.name_prefix}-ticks"
  container = "ticks"
}

################################################################################
# Logs
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest with its own keys; a customer-managed key would need a key policy for the logs service and the module owns no key. The logs hold prices, counters and dead letters, no secrets.
  #checkov:skip=CKV_AWS_338:Operational logs; the retention is a variable (log_retention_days, 14 days by default) rather than a year of cost.
  name              = "/ecs/${local.name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

################################################################################
# Roles: the execution role (ECS pulls the image, ships the logs), the task role (the app)
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name                 = "${local.name}-execution"
  description          = "ECS ${local.name}: pull the ticks image, write the container's logs."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  # The awslogs driver: the log group is made above, so only streams and events.
  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn != null ? [var.ecr_repository_arn] : []
    content {
      sid       = "PullImage"
      effect    = "Allow"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    # GetAuthorizationToken has no resource-level permissions: AWS documents "*" as its only resource.
    for_each = var.ecr_repository_arn != null ? [true] : []
    content {
      sid       = "EcrLogin"
      effect    = "Allow"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "${local.name}-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name                 = "${local.name}-task"
  description          = "ECS ${local.name}: put tick records on the pipeline's stream."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "task" {
  # KinesisSink.put_records: PutRecords only, on this stream only.
  statement {
    sid       = "PutRecords"
    effect    = "Allow"
    actions   = ["kinesis:PutRecords"]
    resources = [var.kinesis_stream_arn]
  }

  dynamic "statement" {
    for_each = var.kinesis_kms_key_arn != null ? [var.kinesis_kms_key_arn] : []
    content {
      sid       = "EncryptRecords"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["kinesis.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "${local.name}-task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

################################################################################
# Network: nothing in, HTTPS out (the feed is wss:// on 443, Kinesis and CloudWatch are HTTPS)
################################################################################

resource "aws_security_group" "this" {
  name        = local.name
  description = "coinlake ticks task: no inbound; HTTPS out to the Coinbase feed and AWS endpoints"
  vpc_id      = var.vpc_id

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  #checkov:skip=CKV_AWS_382:The Coinbase feed and the regional AWS endpoints have no fixed address range to name; the rule is HTTPS (443/tcp) only and there is no inbound rule at all.
  security_group_id = aws_security_group.this.id
  description       = "HTTPS to the Coinbase Exchange feed, Kinesis and CloudWatch Logs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = var.tags
}

################################################################################
# The cluster, the task and the service
################################################################################

resource "aws_ecs_cluster" "this" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = local.container
      image     = var.image
      essential = true
      # SIGTERM on stop: the command closes the feed and stores what it queued (well within the 30 s ECS waits).
      command                = ["ticks-to-kinesis", "--log-format", "json"]
      readonlyRootFilesystem = true
      privileged             = false
      user                   = "10001"
      environment = [
        { name = "COINLAKE_KINESIS_STREAM_NAME", value = var.kinesis_stream_name },
        { name = "COINLAKE_SYMBOLS", value = join(",", var.symbols) },
        { name = "COINLAKE_TICKS__URL", value = var.ticks_url },
        { name = "AWS_REGION", value = data.aws_region.current.name },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = local.container
        }
      }
    }
  ])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name            = local.name
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.this.arn
  launch_type     = "FARGATE"
  desired_count   = 1
  # A deployment starts the new task before it stops the old one: the feed is never left
  # unread, and the ticks both tasks send meanwhile have the same event ids (deduplicated).
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = var.tags
}
