variable "role_name" {
  description = "Name of the runtime connector role symbot assumes (aws.role_arn in symbot.yml)."
  type        = string
  default     = "symbot-runtime-connector"
}

variable "external_id" {
  description = "The sts:ExternalId symbot sends (aws.external_id in symbot.yml): unique to this installation, 2-1224 characters of \\w+=,.@:/-."
  type        = string
  validation {
    condition     = can(regex("^[\\w+=,.@:/-]{2,1224}$", var.external_id))
    error_message = "external_id must be 2-1224 characters of letters, digits and +=,.@:/-_ (the same value as aws.external_id in symbot.yml)."
  }
}

variable "trusted_principal" {
  description = "ARN of the identity symbot runs as (aws sts get-caller-identity: an IAM user or role ARN), or null to trust the account root (then any identity of this account allowed to assume the role may)."
  type        = string
  default     = null
  validation {
    condition     = var.trusted_principal == null || can(regex("^arn:aws(-[a-z]+)*:iam::\\d{12}:(root|user/.+|role/.+)$", var.trusted_principal))
    error_message = "trusted_principal must be an IAM user or role ARN (for an assumed-role session, use the role's ARN), or null."
  }
}

variable "hop_role_name" {
  description = "If set, a hop role of this name is created: the principal assumes it, and it assumes the runtime connector role (aws.hop_roles in symbot.yml). Chained sessions last at most 1 hour."
  type        = string
  default     = null
}

variable "secret_name" {
  description = "Name of the Secrets Manager secret that holds the Okta API token (okta.token_secret in symbot.yml)."
  type        = string
  default     = "symbot/okta-api-token"
}

variable "create_secret" {
  description = "Create the secret (without a value: put the token in it yourself). false: it exists already under secret_name in this account and region."
  type        = bool
  default     = true
}

variable "secret_tags" {
  description = "Grant access to every secret of the account and region carrying these tags instead of to secret_name (symbot iam-policy --tag k=v). The created secret carries them."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Customer managed KMS key that encrypts the secret, or null for the AWS managed key. When set, the role may kms:Decrypt with it through Secrets Manager only."
  type        = string
  default     = null
}

variable "session_duration_seconds" {
  description = "The role's maximum session duration (aws.session_duration in symbot.yml, 900-43200; at most 3600 with a hop role)."
  type        = number
  default     = 3600
  validation {
    condition     = var.session_duration_seconds >= 900 && var.session_duration_seconds <= 43200
    error_message = "session_duration_seconds must be between 900 (15m) and 43200 (12h)."
  }
}

variable "tags" {
  description = "Tags for the roles and the secret."
  type        = map(string)
  default     = {}
}
