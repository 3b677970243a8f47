#!/usr/bin/env python3
"""Generate src/endpoints_table.rs from botocore's data files.

Run with the project's virtualenv: `.venv/bin/python scripts/gen_endpoints_table.py`
(the Makefile target `endpoints-table` does that).

How the table is made (no guessing of signing names):

* `partitions.json` gives each partition's DNS suffixes (`dnsSuffix`, `dualStackDnsSuffix`),
  its region regex (`^(us|eu|...)\\-\\w+\\-\\d+$`) and its implicit global region.
* For every service (latest API version) botocore's own endpoint rule-set engine
  (`botocore.endpoint_provider.EndpointProvider`, the code the SDK runs) is evaluated offline
  for every region of every partition, every variant (default, FIPS, dual-stack, both) and a few
  parameter sets (required parameters only; every string parameter set to a placeholder; each
  boolean parameter switched on). Each resolved endpoint gives a host, an auth scheme, a signing
  name and a signing region (from the rule set's `authSchemes`, else the service model's
  `signingName`/`endpointPrefix`, `signatureVersion` and `auth`).
* Hosts whose signing region is the region label right before the DNS suffix give an
  *endpoint prefix*: the literal labels between the placeholder labels (bucket, account, ...) and
  the region, normalised like the Rust parser does (a `dualstack` label before the region, a
  `-fips` ending and a leading `fips` label are dropped). Prefix -> signing name.
* Other hosts (no region label) are *global*: the exact host -> (signing name, signing region), or,
  when the host starts with placeholder labels, the literal rest of the host as a *global
  wildcard* (for example `s3.amazonaws.com` for `BUCKET.s3.amazonaws.com`). When the signing region
  depends on the client's region and not on the host (S3 Transfer Acceleration) the entry says so.
* Endpoints that botocore would not sign with SigV4 (SigV4A only, bearer, SigV2) are listed as
  such so the filter refuses them.
* A few documented forms that are not in any rule set (the hosts of customer resources: Lambda
  function URLs, OpenSearch domains, ECR's Docker endpoint) are added from EXTRA_PREFIXES below,
  each with its AWS documentation source.

The output is deterministic (everything is sorted).
"""

import gzip
import itertools
import json
import os
import re
import subprocess
import sys

import botocore
import botocore.session
from botocore.endpoint_provider import EndpointProvider

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "endpoints_table.rs")

# Placeholder values for rule-set parameters; labels containing them are customer labels.
PLACEHOLDER_STR = "zzexample"
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDERS = (PLACEHOLDER_STR, PLACEHOLDER_ACCOUNT)

# Parameters whose rule sets parse the value (an ARN) before building a host.
PARAM_VALUES = {
    "KvsARN": "arn:aws:cloudfront::" + PLACEHOLDER_ACCOUNT + ":key-value-store/" + PLACEHOLDER_STR,
}

# DNS suffixes used by rule sets besides the partitions' dnsSuffix/dualStackDnsSuffix, with the
# partitions whose regions they carry. The generator fails if a resolved host ends with none.
EXTRA_SUFFIXES = {
    "on.aws": ["aws", "aws-us-gov", "aws-cn", "aws-eusc", "aws-iso", "aws-iso-b", "aws-iso-e",
               "aws-iso-f"],
    "signin.aws": ["aws", "aws-us-gov"],
    "amazonwebservices.com.cn": ["aws-cn"],
    "amazonwebservices.eu": ["aws-eusc"],
    "amazonaws-us-gov.com": ["aws-us-gov"],
}

# Documented host forms of customer resources that no botocore rule set produces.
# (prefix, signing name, source)
EXTRA_PREFIXES = [
    ("lambda-url", "lambda",
     "https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html (ID.lambda-url.REGION.on.aws)"),
    ("s3-accesspoint", "s3",
     "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-points-naming.html "
     "(NAME-ACCOUNT.s3-accesspoint[-fips][.dualstack].REGION; botocore builds it from an ARN)"),
    ("s3-website", "s3",
     "https://docs.aws.amazon.com/AmazonS3/latest/userguide/WebsiteEndpoints.html "
     "(BUCKET.s3-website.REGION)"),
    ("dkr.ecr", "ecr",
     "https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html (dkr.ecr.REGION)"),
]
# Region-first forms: NAME.REGION.<service>.<suffix> (OpenSearch domains, OpenSearch Serverless).
REGION_FIRST = [
    ("es", "es",
     "https://docs.aws.amazon.com/opensearch-service/latest/developerguide/createupdatedomains.html"),
    ("aoss", "aoss",
     "https://docs.aws.amazon.com/opensearch-service/latest/developerguide/serverless-vpc.html"),
]


def latest_model(data_dir, svc):
    versions = sorted(v for v in os.listdir(os.path.join(data_dir, svc))
                      if os.path.isdir(os.path.join(data_dir, svc, v)))
    for v in reversed(versions):
        d = os.path.join(data_dir, svc, v)
        if os.path.exists(os.path.join(d, "service-2.json.gz")) and os.path.exists(
                os.path.join(d, "endpoint-rule-set-1.json.gz")):
            return d
    return None


def load_gz(path):
    with gzip.open(path, "rt") as f:
        return json.load(f)


def service_auth(meta):
    """(signing name, sigv4?) from the service model when a rule set gives no authSchemes."""
    name = meta.get("signingName") or meta["endpointPrefix"]
    auth = meta.get("auth")
    if auth:
        ok = "aws.auth#sigv4" in auth
    else:
        ok = meta.get("signatureVersion") in ("v4", "s3", "s3v4", "v4-unsigned-body")
    return name, ok


def bridge(resolver, prefix, region, fips, ds, default_name):
    """Signing name and region botocore's ClientEndpointBridge takes from endpoints.json
    (`credentialScope`), before the rule set's authSchemes override them."""
    try:
        r = resolver.construct_endpoint(prefix, region, use_dualstack_endpoint=ds,
                                        use_fips_endpoint=fips)
    except Exception:
        r = None
    if not r:
        return default_name, region
    scope = r.get("credentialScope", {})
    return scope.get("service", default_name), scope.get("region", r.get("endpointName", region))


def param_sets(params, statics):
    """Parameter dictionaries to evaluate (without Region/UseFIPS/UseDualStack)."""
    base = {}
    full = {}
    bools = []
    for name, spec in sorted(params.items()):
        if name in ("Region", "UseFIPS", "UseDualStack", "Endpoint"):
            continue
        builtin = spec.get("builtIn", "")
        if spec.get("type") == "boolean":
            if "default" in spec:
                base[name] = spec["default"]
                full[name] = spec["default"]
            bools.append(name)
            continue
        if spec.get("type") != "string":
            continue
        if name in PARAM_VALUES:
            val = PARAM_VALUES[name]
        elif "AccountIdEndpointMode" in name:
            val = "preferred"
        elif "AccountId" in name or builtin == "AWS::Auth::AccountId":
            val = PLACEHOLDER_ACCOUNT
        else:
            val = PLACEHOLDER_STR
        if "default" in spec:
            base[name] = spec["default"]
        elif spec.get("required"):
            base[name] = val
        full[name] = val
    sets = [base, full]
    for st in statics:
        for src in (base, full):
            d = dict(src)
            d.update(st)
            sets.append(d)
    for b in bools:
        for src in (base, full):
            d = dict(src)
            d[b] = not d.get(b, False)
            sets.append(d)
    return sets


def main():
    data_dir = os.path.join(os.path.dirname(botocore.__file__), "data")
    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    partitions = loader.load_data("partitions")["partitions"]

    # suffix -> list of partition ids (in partitions.json order)
    suffix_parts = {}
    part_regex = {}
    part_regions = {}
    for p in partitions:
        pid = p["id"]
        part_regex[pid] = re.compile(p["regionRegex"])
        part_regions[pid] = sorted(p["regions"])
        for key in ("dnsSuffix", "dualStackDnsSuffix"):
            suffix_parts.setdefault(p["outputs"][key], [])
            if pid not in suffix_parts[p["outputs"][key]]:
                suffix_parts[p["outputs"][key]].append(pid)
    for sfx, pids in EXTRA_SUFFIXES.items():
        suffix_parts.setdefault(sfx, [])
        for pid in pids:
            if pid not in suffix_parts[sfx]:
                suffix_parts[sfx].append(pid)
    suffixes_by_len = sorted(suffix_parts, key=lambda s: (-len(s), s))
    pseudo_regions = {r for p in partitions for r in p["regions"]
                      if not re.match(p["regionRegex"], r)}

    def split_suffix(host):
        for s in suffixes_by_len:
            if host.endswith("." + s):
                return host[: -len(s) - 1], s
        return None, None

    # Region prefixes per partition, parsed from the regex ^(a|b)\-\w+\-\d+$ / ^us\-gov\-\w+\-\d+$
    def region_prefixes(rx):
        m = re.fullmatch(r"\^\(?([a-z|\\\-()]+?)\)?\\-\\w\+\\-\\d\+\$", rx)
        if not m:
            sys.exit("unexpected regionRegex " + rx)
        body = m.group(1).replace("\\-", "-").replace("(", "").replace(")", "")
        return sorted(body.split("|")) if "|" in body else [body]

    prefixes = {}      # key -> {signing name: count}
    not_v4_prefixes = {}  # key -> count
    global_hosts = {}  # host -> {(name, region, auth): [partition index]}
    global_wild = {}   # rest -> {(name, region, auth): [partition index]}
    unknown_suffix = set()

    from botocore.regions import EndpointResolver
    resolver = EndpointResolver(loader.load_data("endpoints"))

    services = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    for svc in services:
        mdir = latest_model(data_dir, svc)
        if mdir is None:
            continue
        model = load_gz(os.path.join(mdir, "service-2.json.gz"))
        meta = model["metadata"]
        statics = []
        host_prefixes = [""]
        for op in model["operations"].values():
            st = {k: v.get("value") for k, v in op.get("staticContextParams", {}).items()}
            if st and st not in statics:
                statics.append(st)
            hp = op.get("endpoint", {}).get("hostPrefix")
            if hp:
                hp = re.sub(r"\{[^}]*\}", PLACEHOLDER_STR, hp)
                if hp not in host_prefixes:
                    host_prefixes.append(hp)
        statics.sort(key=lambda d: json.dumps(d, sort_keys=True))
        host_prefixes.sort()
        endpoint_prefix = meta["endpointPrefix"]
        rs = load_gz(os.path.join(mdir, "endpoint-rule-set-1.json.gz"))
        provider = EndpointProvider(rs, {"partitions": partitions, "version": "1.1"})
        default_name, default_ok = service_auth(meta)
        sets = param_sets(rs.get("parameters", {}), statics)
        seen = set()
        for pi, p in enumerate(partitions):
            for region in part_regions[p["id"]]:
                for fips, ds in itertools.product((False, True), repeat=2):
                    bridge_name, bridge_region = bridge(resolver, endpoint_prefix, region, fips, ds,
                                                        default_name)
                    for extra in sets:
                        args = dict(extra)
                        args.update(Region=region, UseFIPS=fips, UseDualStack=ds)
                        try:
                            ep = provider.resolve_endpoint(**args)
                        except Exception:
                            continue
                        url = ep.url
                        m = re.match(r"https?://([^/:]+)", url)
                        if not m:
                            continue
                        base_host = m.group(1).lower()
                        schemes = (ep.properties or {}).get("authSchemes") or []
                        v4 = [s for s in schemes if s.get("name") in ("sigv4", "sigv4-s3express")]
                        if schemes:
                            if v4:
                                name = v4[0].get("signingName", bridge_name)
                                sreg = v4[0].get("signingRegion", bridge_region)
                                auth = "V4"
                            else:
                                name = schemes[0].get("signingName", default_name)
                                sreg = ""
                                auth = "NotV4"
                        else:
                            name, sreg = bridge_name, bridge_region
                            auth = "V4" if default_ok else "NotV4"
                        for hp in host_prefixes:
                            host = hp + base_host
                            item = (host, name, sreg, auth, region, pi)
                            if item in seen:
                                continue
                            seen.add(item)
                            rest, sfx = split_suffix(host)
                            if rest is None:
                                unknown_suffix.add(host)
                                continue
                            labels = rest.split(".")
                            ph = [i for i, l in enumerate(labels) if any(x in l for x in PLACEHOLDERS)]
                            first_literal = (ph[-1] + 1) if ph else 0
                            last = labels[-1]
                            if any(part_regex[q].match(last) for q in suffix_parts[sfx]):
                                key = normalise(labels[first_literal:-1])
                                if key and auth == "V4" and sreg == last:
                                    prefixes.setdefault(key, {}).setdefault(name, 0)
                                    prefixes[key][name] += 1
                                    continue
                                if key and auth == "NotV4":
                                    not_v4_prefixes[key] = not_v4_prefixes.get(key, 0) + 1
                                    continue
                            elif last in pseudo_regions and (sreg == last or auth == "NotV4"):
                                # the generic template filled with a pseudo-region: not a real host
                                continue
                            target = global_wild if ph else global_hosts
                            k = ".".join(labels[first_literal:] + [sfx]) if ph else host
                            target.setdefault(k, {}).setdefault((name, sreg if auth == "V4" else "", auth),
                                                                set()).add((pi, region))

    if unknown_suffix:
        print("ignored (not under a partition suffix): " + ", ".join(sorted({h.split(".", 1)[1] for h in unknown_suffix})))

    for key, name, _src in EXTRA_PREFIXES:
        prefixes.setdefault(key, {name: 1})

    # Resolve prefixes: the most common signing name wins, ties alphabetical.
    prefix_rows = []
    for key in sorted(prefixes):
        names = prefixes[key]
        best = sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        prefix_rows.append((key, best))
    # When services sharing a prefix disagree (SimpleDB: `sdb` SigV2, `simpledbv2` SigV4), refuse.
    both = sorted(k for k in not_v4_prefixes if k in prefixes)
    if both:
        print("prefixes signed both with and without SigV4 (refused): " + ", ".join(both))
    prefix_rows = [r for r in prefix_rows if r[0] not in not_v4_prefixes]
    not_v4_rows = sorted(not_v4_prefixes)

    def resolve_global(entries):
        """One (name, region, auth) for a host: not SigV4 if any client does not sign it with
        SigV4; the first partition owning the
        suffix; a region that varies with the client's region within a partition -> unknown."""
        cands = []
        for (name, sreg, auth), origins in entries.items():
            pis = sorted({o[0] for o in origins})
            cands.append((0 if auth == "NotV4" else 1, pis[0], name, sreg, auth))
        cands.sort()
        best = cands[0]
        # same auth, same best partition, different regions -> the region is not in the host
        same = [c for c in cands if c[0] == best[0] and c[1] == best[1] and c[2] == best[2]]
        regions = {c[3] for c in same}
        if best[4] == "V4" and len(regions) > 1:
            return best[2], "", "RegionUnknown"
        return best[2], best[3], best[4]

    global_rows = sorted((h,) + resolve_global(e) for h, e in global_hosts.items())
    wild_rows = sorted((h,) + resolve_global(e) for h, e in global_wild.items())
    # wildcard rows whose region comes from the client's region (one per region) -> unknown
    fixed_wild = []
    for h, name, reg, auth in wild_rows:
        origins = set()
        for (n, r, a), o in global_wild[h].items():
            if n == name and a == auth:
                origins |= {x[1] for x in o}
        if auth == "V4" and len(origins) > 1 and reg in origins:
            auth, reg = "RegionUnknown", ""
        fixed_wild.append((h, name, reg, auth))
    wild_rows = fixed_wild

    # Partition suffixes and region prefixes
    suffix_rows = []
    for sfx in suffixes_by_len:
        pre = []
        for pid in suffix_parts[sfx]:
            p = next(x for x in partitions if x["id"] == pid)
            for r in region_prefixes(p["regionRegex"]):
                if r not in pre:
                    pre.append(r)
        suffix_rows.append((sfx, sorted(pre)))

    write(prefix_rows, not_v4_rows, global_rows, wild_rows, suffix_rows)


def normalise(labels):
    labels = list(labels)
    if labels and labels[-1] == "dualstack":
        labels = labels[:-1]
    if labels and labels[0] == "fips":
        labels = labels[1:]
    if labels and labels[-1].endswith("-fips"):
        labels[-1] = labels[-1][: -len("-fips")]
    if labels and labels[-1] == "dualstack":
        labels = labels[:-1]
    return ".".join(labels)


def rs_str(s):
    return json.dumps(s)


def write(prefix_rows, not_v4_rows, global_rows, wild_rows, suffix_rows):
    out = []
    out.append("// @generated by scripts/gen_endpoints_table.py — do not edit.")
    out.append("// Source: botocore %s data files (partitions.json, each service's service-2.json" % botocore.__version__)
    out.append("// metadata and endpoint-rule-set-1.json evaluated with botocore's EndpointProvider).")
    out.append("// Regenerate with `make endpoints-table`.")
    out.append("#![allow(dead_code)]")
    out.append("")
    out.append("/// botocore version the table was generated from.")
    out.append("pub(crate) const BOTOCORE_VERSION: &str = %s;" % rs_str(botocore.__version__))
    out.append("")
    out.append("/// How a global host is signed.")
    out.append("#[derive(Clone, Copy, Debug, PartialEq, Eq)]")
    out.append("pub(crate) enum Auth {")
    out.append("    /// SigV4 with the given signing name and region.")
    out.append("    SigV4,")
    out.append("    /// SigV4, but the signing region depends on the client's region, not the host.")
    out.append("    RegionUnknown,")
    out.append("    /// Not SigV4 (SigV4A only, bearer token or SigV2).")
    out.append("    NotSigV4,")
    out.append("}")
    out.append("")
    out.append("/// Partition DNS suffixes, longest first, with the first labels of their regions")
    out.append("/// (`PREFIX-WORD-DIGITS`).")
    out.append("pub(crate) static SUFFIXES: &[(&str, &[&str])] = &[")
    for sfx, pre in suffix_rows:
        out.append("    (%s, &[%s])," % (rs_str(sfx), ", ".join(rs_str(p) for p in pre)))
    out.append("];")
    out.append("")
    # The large tables refer to their strings as (offset, length) in one TEXT string (a
    # string that already occurs in TEXT is not added again), and global hosts are keyed by
    # (index in SUFFIXES, labels before the suffix): this keeps the wasm module small.
    sfx_index = {sfx: i for i, (sfx, _) in enumerate(suffix_rows)}

    def split_sfx(host):
        for sfx, _ in suffix_rows:
            if host.endswith("." + sfx) and len(host) > len(sfx) + 1:
                return sfx_index[sfx], host[: -len(sfx) - 1]
        sys.exit("global host not under a suffix: " + host)

    def keyed(rows):
        return sorted((split_sfx(h) + (n, r, a, h) for h, n, r, a in rows))

    global_keyed = keyed(global_rows)
    wild_keyed = keyed(wild_rows)
    strings = {k for r in prefix_rows for k in r}
    for rows in (global_keyed, wild_keyed):
        strings |= {x for r in rows for x in r[1:4]}
    text = ""
    for t in sorted(strings, key=lambda t: (-len(t), t)):
        if t not in text:
            text += t
    if len(text) > 0xFFFF or max(len(t) for t in strings) > 0xFF:
        sys.exit("TEXT too long for u16 offsets (or a string longer than 255)")

    def ref(t):
        return "%d, %d" % (text.index(t), len(t))

    out.append("/// The strings of the tables below, each `S(offset, length)` into this text.")
    out.append("pub(crate) static TEXT: &str = concat!(")
    for i in range(0, len(text), 80):
        out.append("    %s," % rs_str(text[i : i + 80]))
    out.append(");")
    out.append("")
    out.append("/// `TEXT[offset..offset + length]`.")
    out.append("#[derive(Clone, Copy, Debug, PartialEq, Eq)]")
    out.append("pub(crate) struct S(pub u16, pub u8);")
    out.append("")
    out.append("/// A global host: `(labels before the suffix, signing name, signing region, auth)`, the")
    out.append("/// suffix being `SUFFIXES[suffix]`.")
    out.append("#[derive(Clone, Copy, Debug, PartialEq, Eq)]")
    out.append("pub(crate) struct Global {")
    out.append("    pub suffix: u8,")
    out.append("    pub rest: S,")
    out.append("    pub name: S,")
    out.append("    pub region: S,")
    out.append("    pub auth: Auth,")
    out.append("}")
    out.append("")
    out.append("#[allow(clippy::too_many_arguments)]")
    out.append("const fn g(suffix: u8, r0: u16, r1: u8, n0: u16, n1: u8, g0: u16, g1: u8, auth: Auth) -> Global {")
    out.append("    Global {")
    out.append("        suffix,")
    out.append("        rest: S(r0, r1),")
    out.append("        name: S(n0, n1),")
    out.append("        region: S(g0, g1),")
    out.append("        auth,")
    out.append("    }")
    out.append("}")
    out.append("")
    out.append("/// Endpoint prefix (labels before the region, normalised) -> signing name. Sorted.")
    out.append("pub(crate) static PREFIXES: &[(S, S)] = &[")
    for k, n in prefix_rows:
        out.append("    (S(%s), S(%s)), // %s -> %s" % (ref(k), ref(n), k, n))
    out.append("];")
    out.append("")
    out.append("/// Endpoint prefixes whose endpoints are not signed with SigV4. Sorted.")
    out.append("pub(crate) static NOT_SIGV4_PREFIXES: &[&str] = &[")
    for k in not_v4_rows:
        out.append("    %s," % rs_str(k))
    out.append("];")
    out.append("")
    out.append("/// Exact global hosts -> (signing name, signing region, auth). Sorted by (suffix, rest).")
    out.append("pub(crate) static GLOBAL_HOSTS: &[Global] = &[")
    for si, rest, n, r, a, h in global_keyed:
        out.append("    g(%d, %s, %s, %s, Auth::%s), // %s -> %s %s" % (
            si, ref(rest), ref(n), ref(r), auth_name(a), h, n, r or '""'))
    out.append("];")
    out.append("")
    out.append("/// Global hosts below customer labels (`BUCKET.` + key) -> (signing name, region, auth).")
    out.append("/// Sorted by (suffix, rest).")
    out.append("pub(crate) static GLOBAL_WILDCARDS: &[Global] = &[")
    for si, rest, n, r, a, h in wild_keyed:
        out.append("    g(%d, %s, %s, %s, Auth::%s), // %s -> %s %s" % (
            si, ref(rest), ref(n), ref(r), auth_name(a), h, n, r or '""'))
    out.append("];")
    out.append("")
    out.append("/// Region-first forms `NAME.REGION.KEY.SUFFIX` (from AWS documentation) -> signing name.")
    out.append("pub(crate) static REGION_FIRST: &[(&str, &str)] = &[")
    for k, n, _src in sorted(REGION_FIRST):
        out.append("    (%s, %s)," % (rs_str(k), rs_str(n)))
    out.append("];")
    out.append("")
    with open(OUT, "w") as f:
        f.write("\n".join(out))
    # rustfmt the output so `cargo fmt --check` stays clean (deterministic)
    subprocess.run(["rustfmt", "--edition", "2021", OUT], check=True)
    print("wrote %s: %d prefixes, %d not-sigv4, %d global hosts, %d wildcards, %d suffixes" % (
        OUT, len(prefix_rows), len(not_v4_rows), len(global_rows), len(wild_rows), len(suffix_rows)))


def auth_name(a):
    return {"V4": "SigV4", "NotV4": "NotSigV4", "RegionUnknown": "RegionUnknown"}[a]


if __name__ == "__main__":
    main()
