"""Trim Envoy Gateway's EnvoyProxy CRD to the parts the manifests in envoy-gateway/ use.

The full CRD is 1.4 MB, almost all of it the Kubernetes pod and container schemas under
spec.provider and the telemetry schemas. This keeps, under spec, only the properties listed
in KEEP (each with its whole schema below the last kept name) and marks every trimmed object
`additionalProperties: false`, so that a manifest using a field that was cut fails validation
(then add the field here and trim again) instead of passing unchecked.

    python trim.py SOURCE/gateway.envoyproxy.io_envoyproxies.yaml > gateway.envoyproxy.io_envoyproxies.trimmed.yaml
"""

import sys

import yaml

# Paths under spec (dotted): a kept name keeps its whole subtree.
KEEP = [
    "dynamicModules",
    "bootstrap",
    "provider.type",
    "provider.kubernetes.envoyDeployment.container.image",
    "provider.kubernetes.envoyDeployment.container.env",
    "provider.kubernetes.envoyDeployment.patch",
]


def tree(paths):
    out = {}
    for p in paths:
        node = out
        for part in p.split("."):
            node = node.setdefault(part, {})
    return out


def trim(schema, keep):
    props = schema.get("properties", {})
    missing = set(keep) - set(props)
    if missing:
        raise SystemExit(f"not in the schema: {sorted(missing)}")
    new = {}
    for name, sub in keep.items():
        new[name] = trim(props[name], sub) if sub else props[name]
    schema = {k: v for k, v in schema.items() if k not in ("properties", "x-kubernetes-validations", "required")}
    schema["properties"] = new
    schema["additionalProperties"] = False
    return schema


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    [crd] = docs
    for v in crd["spec"]["versions"]:
        spec = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
        v["schema"]["openAPIV3Schema"]["properties"]["spec"] = trim(spec, tree(KEEP))
    sys.stdout.write("# Trimmed by trim.py (see README.md); generated, do not edit.\n")
    yaml.safe_dump(crd, sys.stdout, sort_keys=False, width=120)


if __name__ == "__main__":
    main()
