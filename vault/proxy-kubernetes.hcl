# OpenBao Proxy (or Vault Proxy) as a container beside the Istio sidecar
# (istio/kubernetes/vault-proxy.yaml holds the same text in a ConfigMap): it logs in with the
# pod's service account token (Kubernetes auth method, role grant-sigv4), renews, logs in again
# when renewal ends, and adds its token to every request of the filter
# (use_auto_auth_token = "force"). It speaks plain HTTP to Vault's Service: the pod's sidecar
# originates TLS to Vault and checks its certificate (istio/vault.yaml), as for the apps' AWS
# calls.

vault {
  address = "http://vault.vault.svc.cluster.local:8200"
}

auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role = "grant-sigv4"
    }
  }
}

api_proxy {
  use_auto_auth_token = "force"
}

listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}
