# The AWS side of symbot (Sym's "runtime connector"): the role symbot
# assumes with an external id, allowed to read the Okta API token secret and
# nothing else; optionally a hop role before it, and the secret itself
# (without a value). The policies are the ones `symbot iam-policy` prints for
# the same inputs; deploy/terraform_test.go checks that they stay equal.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  connector_arn = "arn:${local.partition}:iam::${local.account_id}:role/${var.role_name}"
  hop_arn       = var.hop_role_name == null ? null : "arn:${local.partition}:iam::${local.account_id}:role/${var.hop_role_name}"
  first_role    = coalesce(local.hop_arn, local.connector_arn)
  principal     = coalesce(var.trusted_principal, "arn:${local.partition}:iam::${local.account_id}:root")
  by_tag        = length(var.secret_tags) > 0

  # Attach to the identity symbot runs as (output principal_policy).
  principal_policy = {
    Version = "2012-10-17"
    Statement = [{
      Sid      = "SymbotAssumeFirstRole"
      Effect   = "Allow"
      Action   = "sts:AssumeRole"
      Resource = local.first_role
    }]
  }

  hop_trust_policy = {
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TrustSymbot"
      Effect    = "Allow"
      Principal = { AWS = local.principal }
      Action    = "sts:AssumeRole"
    }]
  }

  hop_permission_policy = {
    Version = "2012-10-17"
    Statement = [{
      Sid      = "SymbotAssumeNextRole"
      Effect   = "Allow"
      Action   = "sts:AssumeRole"
      Resource = local.connector_arn
    }]
  }

  connector_trust_policy = {
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TrustSymbot"
      Effect    = "Allow"
      Principal = { AWS = coalesce(local.hop_arn, local.principal) }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "sts:ExternalId" = var.external_id } }
    }]
  }

  # A secret's ARN ends in a random 6-character suffix after its name.
  read_secret = {
    for k, v in {
      Sid       = "ReadOktaTokenSecret"
      Effect    = "Allow"
      Action    = "secretsmanager:GetSecretValue"
      Resource  = local.by_tag ? "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:*" : "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${var.secret_name}-??????"
      Condition = local.by_tag ? { StringEquals = { for tk, tv in var.secret_tags : "aws:ResourceTag/${tk}" => tv } } : null
    } : k => v if v != null
  }

  decrypt_secret = {
    Sid      = "DecryptOktaTokenSecret"
    Effect   = "Allow"
    Action   = "kms:Decrypt"
    Resource = var.kms_key_arn
    Condition = {
      StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" }
    }
  }

  connector_permission_policy = {
    Version   = "2012-10-17"
    Statement = concat([local.read_secret], var.kms_key_arn == null ? [] : [local.decrypt_secret])
  }
}

resource "aws_iam_role" "hop" {
  count                = var.hop_role_name == null ? 0 : 1
  name                 = var.hop_role_name
  description          = "symbot hop role: assumes the runtime connector role"
  assume_role_policy   = jsonencode(local.hop_trust_policy)
  max_session_duration = var.session_duration_seconds
  tags                 = var.tags
}

resource "aws_iam_role_policy" "hop" {
  count  = var.hop_role_name == null ? 0 : 1
  name   = "symbot-assume-next-role"
  role   = aws_iam_role.hop[0].id
  policy = jsonencode(local.hop_permission_policy)
}

resource "aws_iam_role" "connector" {
  name                 = var.role_name
  description          = "symbot runtime connector: assumed with the external id; reads the Okta API token secret"
  assume_role_policy   = jsonencode(local.connector_trust_policy)
  max_session_duration = var.session_duration_seconds
  tags                 = var.tags

  # The trust policy names the hop role by ARN: IAM checks that it exists.
  depends_on = [aws_iam_role.hop]
}

resource "aws_iam_role_policy" "connector" {
  name   = "symbot-read-okta-token"
  role   = aws_iam_role.connector.id
  policy = jsonencode(local.connector_permission_policy)
}

resource "aws_secretsmanager_secret" "okta_token" {
  count       = var.create_secret ? 1 : 0
  name        = var.secret_name
  description = "Okta API token for symbot (JSON {\"okta_api_token\": \"...\"} or plain text). Put the value in yourself."
  kms_key_id  = var.kms_key_arn
  tags        = merge(var.tags, var.secret_tags)
}
