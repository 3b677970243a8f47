# grantctl's Vault policy: create, update, show, list and revoke grants under the prefix, and
# check that the role of a dynamic grant exists. It reads no AWS engine credentials.
# Paths assume kv_mount "secret", path_prefix "aws/grants/" and the AWS engine at "aws".
#
#   bao policy write grantctl vault/policies/grantctl.hcl

path "secret/data/aws/grants/*" {
  capabilities = ["create", "update", "read"]
}

# show (versions), revoke (delete every version and the metadata), list
path "secret/metadata/aws/grants/*" {
  capabilities = ["read", "delete", "list"]
}
path "secret/metadata/aws/grants" {
  capabilities = ["list"]
}

# grantctl checks that the mount is KV version 2 before writing
path "sys/internal/ui/mounts/secret" {
  capabilities = ["read"]
}

# create --aws-role checks that the role exists
path "aws/roles/*" {
  capabilities = ["read"]
}
