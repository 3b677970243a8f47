# The filter's Vault policy: read grants, and the AWS secrets engine's keys for dynamic grants.
# Nothing else: it cannot list grants, write them, or read outside the grant prefix.
# Paths assume the defaults kv_mount "secret", path_prefix "aws/grants/" and the AWS engine at
# "aws" (a grant's aws_mount); change them together with the plugin configuration.
#
#   bao policy write grant-sigv4-filter vault/policies/grant-sigv4-filter.hcl

# Static grants (KV version 2): GET /v1/secret/data/aws/grants/<grant id>
path "secret/data/aws/grants/*" {
  capabilities = ["read"]
}

# Dynamic grants: GET /v1/aws/creds/<role> and /v1/aws/sts/<role>
path "aws/creds/*" {
  capabilities = ["read"]
}
path "aws/sts/*" {
  capabilities = ["read"]
}
