# OpenBao Proxy (or Vault Proxy) beside Envoy, for envoy/envoy.yaml: it logs in with AppRole,
# renews its token and logs in again when renewal ends, and adds its token to every request
# the filter sends (use_auto_auth_token = "force"). The filter holds no Vault secret.
#
#   bao proxy -config=vault/proxy-approle.hcl
#
# Replace: the Vault address and CA, and the paths of the role id and secret id files (see
# docs/vault-auth.md for the commands that create them).

vault {
  address = "https://vault.internal.example:8200"
  ca_cert = "/etc/ssl/certs/ca-certificates.crt"
}

auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path                   = "/etc/grant-sigv4/role-id"
      secret_id_file_path                 = "/etc/grant-sigv4/secret-id"
      remove_secret_id_file_after_reading = false
    }
  }
}

api_proxy {
  use_auto_auth_token = "force"
}

# Loopback only: whoever reaches this listener reads grants with the proxy's token.
listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}
