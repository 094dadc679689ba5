output "role_arn" {
  description = "aws.role_arn for symbot.yml."
  value       = aws_iam_role.connector.arn
}

output "external_id" {
  description = "aws.external_id for symbot.yml."
  value       = var.external_id
}

output "hop_role_arns" {
  description = "aws.hop_roles for symbot.yml (empty without a hop role)."
  value       = aws_iam_role.hop[*].arn
}

output "secret_arn" {
  description = "okta.token_secret for symbot.yml (the name works too), or null when the secret was not created here."
  value       = var.create_secret ? aws_secretsmanager_secret.okta_token[0].arn : null
}

output "principal_policy" {
  description = "Attach this policy to the identity symbot runs as (needed across accounts, or when the trust policy names the account root)."
  value       = jsonencode(local.principal_policy)
}
