#!/usr/bin/env python3
"""Generate src/endpoints_table.rs and the host corpus from botocore's data files.

Run with the project's virtualenv: `make endpoints-table` writes the table (and the corpus);
`make host-corpus` (part of `make unit`) writes the corpus and fails when the committed table
is not what the pinned botocore gives (`--check`).

How hosts are found (no guessing of signing names, no list of services):

* `partitions.json` gives each partition's DNS suffixes (`dnsSuffix`, `dualStackDnsSuffix`),
  its region regex (`^(us|eu|...)\\-\\w+\\-\\d+$`) and its implicit global region.
* Every service's rule set (latest API version) is read rule by rule. For each endpoint rule,
  the conditions on the path to it say what the parameters must be: a boolean's value, a
  string parameter set, unset, equal to a literal (`OperationType` = `data`) or to none of a
  few, parsed as an ARN (`aws.parseArn`: a well-formed ARN of the evaluated partition and
  region is built, with the service, resource type and resource parts the rules compare),
  cut into substrings compared with literals (S3 Express bucket names, Kinesis stream ids), a
  host label or not. A parameter the rules only need set takes each value the service
  model's operations give it (`staticContextParams`), else a placeholder; an account id is
  `123456789012`. A condition the generator cannot read fails the run.
* botocore's own rule engine (`EndpointProvider`, the code the SDK runs) evaluates each of
  these parameter sets for every region of every partition (and the regions rules name, and
  no region when a rule asks for none) and every variant the path allows (default, FIPS,
  dual-stack, both). Every endpoint rule must give an endpoint for some set, or be shown
  unreachable: its path alone resolves (an earlier rule answers first), no partition has what
  it asks of the partition, or it needs a custom endpoint. Otherwise the run fails.
* Each resolved endpoint gives a host, an auth scheme, a signing name and a signing region:
  the rule set's `authSchemes`, else what botocore's ClientEndpointBridge takes from
  endpoints.json and the service model (for a legacy `v2` model, a real client is asked
  whether it signs with SigV4). Variants botocore builds no client for are skipped.
* Hosts whose signing region is the region label right before the DNS suffix give an
  *endpoint prefix*: the literal labels between the placeholder labels (bucket, account, ...) and
  the region, normalised like the Rust parser does (a `dualstack` label before the region, a
  `-fips` ending and a leading `fips` label are dropped). Prefix -> signing name (the most
  common; a host of the prefix signed under another name is kept as an exact host).
* Other hosts (no region label) are *global*: the exact host -> (signing name, signing region), or,
  when the host starts with placeholder labels, the literal rest of the host as a *global
  wildcard* (for example `s3.amazonaws.com` for `BUCKET.s3.amazonaws.com`). When the signing region
  depends on the client's region and not on the host (S3 Transfer Acceleration) the entry says so.
* Endpoints that botocore would not sign with SigV4 (SigV4A only, bearer, SigV2) are listed as
  such so the filter refuses them.
* A few documented forms that are not in any rule set (the hosts of customer resources: Lambda
  function URLs, OpenSearch domains, ECR's Docker endpoint) are added from EXTRA_PREFIXES below,
  each with its AWS documentation source.
* `--corpus PATH` also writes every resolved host as one JSON line (the fields are described in
  tests/data/aws-hosts/README.md): what tests/aws_hosts.rs checks the parser against.

The output is deterministic (everything is sorted).
"""

import argparse
import gzip
import itertools
import json
import os
import re
import subprocess
import sys

import botocore
import botocore.session
from botocore.endpoint_provider import EndpointProvider, EndpointRule, RuleSetStandardLibrary, TreeRule
from botocore.client import ClientEndpointBridge
from botocore.config import Config
from botocore.exceptions import (EndpointResolutionError, EndpointVariantError,
                                 UnknownSignatureVersionError)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "endpoints_table.rs")

# Placeholder values for rule-set parameters; labels containing them are customer labels.
PLACEHOLDER_STR = "zzexample"
PLACEHOLDER_ACCOUNT = "123456789012"
# Every placeholder string value contains this (also the parts of one the rules cut out).
PLACEHOLDER_MARK = "zz"

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
# DNS suffixes of AWS domains where rule sets build only a few global hosts (the sign-in
# endpoints of each partition). Only those exact hosts are accepted under them: the suffix
# gets no region forms, so `PREFIX.REGION.aws.amazon.com` is refused.
HOST_ONLY_SUFFIXES = {
    "aws.amazon.com": ["aws"],
    "amazonaws.cn": ["aws-cn"],
    "amazonaws-eusc.eu": ["aws-eusc"],
    "c2shome.ic.gov": ["aws-iso"],
    "sc2shome.sgov.gov": ["aws-iso-b"],
    "csphome.adc-e.uk": ["aws-iso-e"],
    "csphome.hci.ic.gov": ["aws-iso-f"],
}
# Hosts rule sets give that are not AWS's: DynamoDB Local (`Region=local`).
NOT_AWS_HOSTS = {"localhost"}

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


# Endpoint rules that gave an endpoint during the current service's evaluation (by id).
REACHED = set()
_evaluate = EndpointRule.evaluate


def _recording_evaluate(self, scope_vars, rule_lib):
    out = _evaluate(self, scope_vars, rule_lib)
    if out is not None:
        REACHED.add(id(self))
    return out



def endpoint_rules(rules):
    """botocore's endpoint rule objects, in the order of leaf_paths."""
    for r in rules:
        if isinstance(r, TreeRule):
            yield from endpoint_rules(r.rules)
        elif isinstance(r, EndpointRule):
            yield r


def is_placeholder(label):
    """A label made from a placeholder value (a customer's bucket, account, stream, ...)."""
    return PLACEHOLDER_ACCOUNT in label or PLACEHOLDER_MARK in label


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


def bridge(resolver, meta, region, fips, ds, default_name, default_ok):
    """Signing name, signing region and whether it is SigV4, as botocore's own
    ClientEndpointBridge (the code a client is built with) takes them from endpoints.json
    (`credentialScope`, `signatureVersions`) and the service model, before the rule set's
    authSchemes override them."""
    b = ClientEndpointBridge(resolver, client_config=Config(use_fips_endpoint=fips,
                                                            use_dualstack_endpoint=ds),
                             service_signing_name=meta.get("signingName"),
                             service_signature_version=meta.get("signatureVersion"),
                             default_endpoint="{service}.{region}.amazonaws.com")
    try:
        r = b.resolve(meta["endpointPrefix"], region)
    except UnknownSignatureVersionError:
        return default_name, region, False
    except EndpointVariantError:
        # botocore builds no client for this variant in this partition (dual-stack in the
        # ISO partitions): no botocore request goes to what the rule set would give
        return None
    except Exception:  # noqa: BLE001 - no endpoints.json data for this region
        return default_name, region, default_ok
    if meta.get("auth"):
        ok = default_ok
    elif r["signature_version"] in ("v4", "s3v4", "s3", "v4-unsigned-body"):
        ok = True
    elif r["signature_version"] in ("v2", "v3", "v3https"):
        # A legacy model: botocore's clients may still sign with SigV4 (AWS Import/Export
        # does, SimpleDB does not); ask a real client.
        ok = client_signs_v4(meta["endpointPrefix"], region)
    else:
        ok = False  # bearer
    return r["signing_name"], r["signing_region"], ok


_CLIENT_V4 = {}


def client_signs_v4(service, region):
    """Whether a botocore client of `service` in `region` signs a request with SigV4: one
    operation without required input is sent with dummy credentials and stopped before it
    leaves (no network)."""
    key = (service, region)
    if key in _CLIENT_V4:
        return _CLIENT_V4[key]
    session = botocore.session.get_session()
    client = session.create_client(service, region_name=region or "us-east-1",
                                   aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x")
    model = client.meta.service_model
    op = next((o for o in model.operation_names
               if not (model.operation_model(o).input_shape is not None
                       and model.operation_model(o).input_shape.required_members)), None)
    if op is None:
        sys.exit("%s: no operation without required input to test its signer" % service)
    seen = []

    class Stop(Exception):
        pass

    def capture(request, **_):
        seen.append(request.headers.get("Authorization", b"") or b"")
        raise Stop()

    client.meta.events.register("before-send", capture)
    try:
        getattr(client, botocore.xform_name(op))()
    except Stop:
        pass
    _CLIENT_V4[key] = bool(seen) and seen[0].startswith(b"AWS4-HMAC-SHA256 ")
    return _CLIENT_V4[key]


# ---- exhaustive parameter sets: one per endpoint rule (leaf) of a rule set ----

# Functions a rule set may call; any other fails the run (a new function needs code here).
KNOWN_FNS = {
    "booleanEquals", "stringEquals", "isSet", "not", "getAttr", "aws.partition", "aws.parseArn",
    "substring", "isValidHostLabel", "parseURL", "uriEncode", "aws.isVirtualHostableS3Bucket",
}
ARN_FIELDS = {"partition", "service", "region", "accountId"}


class RuleError(Exception):
    pass


class Leaf:
    """What the conditions on the path to one endpoint rule ask of the parameters."""

    def __init__(self):
        self.params = {}   # name -> dict of constraints
        self.arns = {}     # var -> {"param": P, "fields": {field: constraint dict}}
        self.vars = {}     # assigned name -> what it holds (see analyse_leaf's target())
        self.regions = set()
        self.needs_endpoint = False
        self.partition_conds = []   # (attribute, value, negated) on aws.partition results

    def possible_partition(self, partitions, part_index):
        """Whether some partition meets the conditions on partition attributes of this path
        (`supportsDualStack`, `name`, ...): a rule behind `supportsFIPS == false` is dead
        when every partition supports FIPS. With a region named on the path, only its
        partition counts."""
        if self.regions:
            partitions = [partitions[part_index(r)] for r in self.regions]
        for p in partitions:
            out = dict(p["outputs"], name=p["id"])
            if all((out.get(a) == v) != neg for a, v, neg in self.partition_conds):
                return True
        return False

    def p(self, name):
        return self.params.setdefault(name, {"neq": set(), "substr": []})


def _is_ref(a):
    return isinstance(a, dict) and "ref" in a


def _is_fn(a, name=None):
    return isinstance(a, dict) and "fn" in a and (name is None or a["fn"] == name)


def leaf_paths(rules, path=()):
    """(conditions on the path, endpoint rule) for every endpoint rule."""
    for r in rules:
        conds = path + tuple(r.get("conditions", []))
        if r["type"] == "tree":
            yield from leaf_paths(r["rules"], conds)
        elif r["type"] == "endpoint":
            yield conds, r
        elif r["type"] != "error":
            raise RuleError("unknown rule type " + r["type"])


def _check_fns(x):
    if isinstance(x, dict):
        if "fn" in x and x["fn"] not in KNOWN_FNS:
            raise RuleError("unknown function " + x["fn"])
        for v in x.values():
            _check_fns(v)
    elif isinstance(x, list):
        for v in x:
            _check_fns(v)


def analyse_leaf(conds, params):
    """Constraints of one path. Raises RuleError on a condition it cannot read."""
    leaf = Leaf()

    def target(a):
        """What a condition's argument denotes: ("param", P), ("field", arnvar, field),
        ("elem", P) (an element of a string-array parameter), ("pattr", attribute) (of a
        partition result), ("substr", P, start, stop, reversed), ("arn", var), ("other",) (a
        value the generator does not set), or None (a literal)."""
        if _is_ref(a):
            r = a["ref"]
            if r in params:
                return ("param", r)
            if r in leaf.vars:
                return leaf.vars[r]
            raise RuleError("reference to unknown name " + r)
        if _is_fn(a, "getAttr"):
            obj, path = a["argv"]
            if not _is_ref(obj):
                raise RuleError("getAttr of " + json.dumps(obj))
            o = obj["ref"]
            kind = leaf.vars.get(o, ("param",) if o in params else None)
            if kind is None:
                raise RuleError("getAttr of unknown name " + o)
            if kind[0] == "arn":
                if path not in ARN_FIELDS and not re.fullmatch(r"resourceId\[\d\]", path):
                    raise RuleError("unknown ARN attribute " + path)
                return ("field", o, path)
            if kind[0] == "param" and re.fullmatch(r"\[\d+\]", path):
                return ("elem", o)
            if kind[0] == "partition":
                return ("pattr", path)
            return ("other",)
        if _is_fn(a):
            return ("other",)
        return None

    def apply(c, neg):
        fn = c["fn"]
        argv = c["argv"]
        assign = c.get("assign")
        if fn == "not":
            return apply(argv[0], not neg)
        if fn == "isSet":
            t = target(argv[0])
            if _is_fn(argv[0], "parseURL") or (t and t[0] == "param" and t[1] == "Endpoint"):
                if not neg:
                    leaf.needs_endpoint = True
                return
            if _is_fn(argv[0], "aws.parseArn"):
                inner = target(argv[0]["argv"][0])
                if inner and inner[0] == "param":
                    leaf.p(inner[1])["notarn" if neg else "arn"] = True
                return
            if t and t[0] == "param":
                leaf.p(t[1])["unset" if neg else "set"] = True
            elif t and t[0] == "field":
                leaf.arns[t[1]]["fields"].setdefault(t[2], {})["unset" if neg else "set"] = True
            return
        if fn == "booleanEquals":
            a, b = argv
            if isinstance(a, bool):
                a, b = b, a
            t = target(a)
            if t and t[0] == "param" and isinstance(b, bool):
                leaf.p(t[1])["bool"] = b != neg
            elif t and t[0] == "pattr" and isinstance(b, bool):
                leaf.partition_conds.append((t[1], b, neg))
            return
        if fn == "stringEquals":
            a, b = argv
            if isinstance(a, str):
                a, b = b, a
            t = target(a)
            if not isinstance(b, str) or t is None:
                return
            template = "{" in b
            if t[0] == "param":
                if t[1] == "Region":
                    if not neg and not template:
                        leaf.regions.add(b)
                    return
                c2 = leaf.p(t[1])
                if template:
                    c2["set"] = True
                elif neg:
                    c2["neq"].add(b)
                else:
                    c2["eq"] = b
            elif t[0] == "field" and not template:
                f = leaf.arns[t[1]]["fields"].setdefault(t[2], {})
                if neg:
                    f.setdefault("neq", set()).add(b)
                else:
                    f.setdefault("eq", b)
            elif t[0] == "pattr" and not template:
                leaf.partition_conds.append((t[1], b, neg))
            elif t[0] == "substr" and not neg:
                _, pname, s, e, rev = t
                leaf.p(pname)["substr"].append((s, e, rev, b))
            return
        if fn == "aws.parseArn":
            t = target(argv[0])
            if t and t[0] in ("param", "elem"):
                if neg:
                    leaf.p(t[1])["notarn"] = True
                else:
                    leaf.p(t[1])["arn"] = True
                    if assign:
                        leaf.vars[assign] = ("arn", assign)
                        leaf.arns[assign] = {"param": t[1], "fields": {}}
            elif assign:
                leaf.vars[assign] = ("other",)
            return
        if fn == "getAttr":
            t = target(c)
            if t and t[0] == "field":
                leaf.arns[t[1]]["fields"].setdefault(t[2], {})
            if assign:
                leaf.vars[assign] = t if t and t[0] in ("field", "elem") else ("other",)
            return
        if fn == "substring":
            t = target(argv[0])
            if t and t[0] == "param":
                c2 = leaf.p(t[1])
                c2["set"] = True
                c2["minlen"] = max(c2.get("minlen", 0), argv[2])
                if assign:
                    leaf.vars[assign] = ("substr", t[1], argv[1], argv[2], argv[3])
            elif assign:
                leaf.vars[assign] = ("other",)
            return
        if fn == "isValidHostLabel":
            t = target(argv[0])
            if t and t[0] == "param":
                leaf.p(t[1])["label" if not neg else "notlabel"] = True
            return
        if fn in ("parseURL",):
            t = target(argv[0])
            if t and t[0] == "param" and t[1] == "Endpoint" and not neg:
                leaf.needs_endpoint = True
            if assign:
                leaf.vars[assign] = ("url",)
            return
        if fn in ("uriEncode", "aws.isVirtualHostableS3Bucket"):
            t = target(argv[0])
            if t and t[0] == "param" and not neg:
                leaf.p(t[1])["set"] = True
            if assign:
                leaf.vars[assign] = ("other",)
            return
        if fn == "aws.partition":
            if assign:
                leaf.vars[assign] = ("partition",)
            return
        raise RuleError("cannot evaluate condition " + json.dumps(c))

    for c in conds:
        _check_fns(c)
        apply(c, False)
    return leaf


def substring_value(constraints, minlen):
    """A string of `minlen` characters whose substrings (start, stop, reversed) equal the given
    literals; the other characters are placeholder characters."""
    n = max([minlen] + [e for s, e, rev, lit in constraints])
    chars = ["z"] * n
    for s, e, rev, lit in constraints:
        if len(lit) != e - s:
            raise RuleError("substring literal %r does not fit [%d, %d)" % (lit, s, e))
        if rev:
            chars[n - e:n - s] = list(lit)
        else:
            chars[s:e] = list(lit)
    if all(rev for _s, _e, rev, _lit in constraints):
        # counted from the end only: a name that starts like a name (S3 Express buckets)
        chars = list(PLACEHOLDER_STR) + chars
    return "".join(chars)


def leaf_params(leaf, params, statics_values, literals):
    """Parameter sets for one leaf, ARN values left as ("ARN", spec) to fill per region.
    A parameter the rules only need set takes each value the service model's operations give
    it (staticContextParams), else a placeholder."""
    fixed = {}
    choices = []   # (param, [values]) to combine
    for name, spec in sorted(params.items()):
        if name in ("Region", "UseFIPS", "UseDualStack", "Endpoint"):
            continue
        c = leaf.params.get(name, {"neq": set(), "substr": []})
        typ = spec.get("type", "").lower()
        if c.get("unset"):
            continue
        if typ == "boolean":
            if "bool" in c:
                fixed[name] = c["bool"]
            elif "default" in spec:
                fixed[name] = spec["default"]
            continue
        if typ not in ("string", "stringarray"):
            raise RuleError("parameter %s of type %s" % (name, spec.get("type")))
        if typ == "stringarray":
            if c.get("arn"):
                fixed[name] = ("ARNS", arn_fields(leaf, name))
            elif c.get("set") or spec.get("required"):
                fixed[name] = [PLACEHOLDER_STR]
            continue
        builtin = spec.get("builtIn", "")
        wanted = c.get("set") or c.get("arn") or c.get("label") or c.get("notlabel") or \
            c.get("substr") or "eq" in c or c["neq"] or spec.get("required")
        if not wanted:
            continue
        if "eq" in c:
            fixed[name] = c["eq"]
        elif c.get("arn"):
            fixed[name] = ("ARN", arn_fields(leaf, name))
        elif c["substr"]:
            fixed[name] = substring_value(c["substr"], c.get("minlen", 0))
        elif c.get("notlabel"):
            fixed[name] = PLACEHOLDER_STR + "." + PLACEHOLDER_STR
        elif "default" in spec and not c.get("set") and not c["neq"]:
            fixed[name] = spec["default"]
        else:
            if name in statics_values:
                vals = sorted(v for v in statics_values[name] if v not in c["neq"])
            elif builtin == "AWS::Auth::AccountId" or name == "AccountId":
                vals = [PLACEHOLDER_ACCOUNT]
            elif c["neq"]:
                # every other value the rules know, and one they do not
                vals = sorted(v for v in literals.get(name, ()) if v not in c["neq"]) + \
                    [PLACEHOLDER_STR]
            else:
                vals = [PLACEHOLDER_STR]
            if not vals:
                # every value the model gives is excluded: the default, else a placeholder
                vals = [spec["default"]] if spec.get("default") not in (None, *c["neq"]) \
                    else [PLACEHOLDER_STR]
            choices.append((name, vals))
    out = []
    for combo in itertools.product(*[v for _, v in choices]):
        d = dict(fixed)
        d.update({n: v for (n, _), v in zip(choices, combo)})
        out.append(d)
    fips = leaf.params.get("UseFIPS", {}).get("bool")
    ds = leaf.params.get("UseDualStack", {}).get("bool")
    variants = [(f, d) for f, d in itertools.product((False, True), repeat=2)
                if (fips is None or f == fips) and (ds is None or d == ds)]
    return out, variants


def arn_fields(leaf, name):
    """The constraints on the ARN fields of parameter `name`, as JSON (hashable)."""
    fields = {}
    for a in leaf.arns.values():
        if a["param"] == name:
            for f, fc in a["fields"].items():
                fields.setdefault(f, {}).update(fc)
    return json.dumps(fields, sort_keys=True, default=sorted)


def make_arn(spec_json, partition, region, service):
    fields = json.loads(spec_json)

    def val(f, default):
        fc = fields.get(f, {})
        if "eq" in fc:
            return fc["eq"]
        return default

    n = 2
    limit = 99
    for f, fc in fields.items():
        m = re.fullmatch(r"resourceId\[(\d)\]", f)
        if m:
            i = int(m.group(1))
            if fc.get("unset"):
                limit = min(limit, i)
            else:
                n = max(n, i + 1)
    n = min(n, limit)
    res = [val("resourceId[%d]" % i, PLACEHOLDER_STR) for i in range(n)]
    return "arn:%s:%s:%s:%s:%s" % (
        val("partition", partition), val("service", service), val("region", region or ""),
        val("accountId", PLACEHOLDER_ACCOUNT), "/".join(res))


def instantiate(extra, partition, region, service):
    """A parameter set for one region: ARN placeholders become ARNs of that partition/region."""
    args = {}
    for k, v in extra.items():
        if isinstance(v, tuple):
            arn = make_arn(v[1], partition, region, service)
            v = [arn] if v[0] == "ARNS" else arn
        args[k] = v
    return args


def path_resolves(rs, conds, rule, param_sets, variants, partitions, part_regions, part_index,
                  lit_regions, service):
    """Whether the path to `rule` alone (its conditions, without the rules before it) gives an
    endpoint for one of `param_sets` in some region and variant."""
    iso = {"version": rs.get("version", "1.0"), "parameters": rs["parameters"],
           "rules": [{"type": "endpoint", "conditions": list(conds), "endpoint": rule["endpoint"]}]}
    provider = EndpointProvider(iso, {"partitions": partitions, "version": "1.1"})
    regions = [(pi, r) for pi, p in enumerate(partitions) for r in part_regions[p["id"]]]
    regions += [(part_index(r), r) for r in sorted(lit_regions)] + [(0, None)]
    for extra in param_sets:
        for pi, region in regions:
            for fips, ds in variants:
                args = instantiate(extra, partitions[pi]["id"], region, service)
                args.update(UseFIPS=fips, UseDualStack=ds)
                if region is not None:
                    args["Region"] = region
                try:
                    provider.resolve_endpoint(**args)
                    return True
                except EndpointResolutionError:
                    pass
    return False


def rule_literals(rs):
    """For each parameter, the literals the rule set compares it with."""
    out = {}

    def walk(x):
        if isinstance(x, dict):
            if x.get("fn") == "stringEquals":
                a, b = x["argv"]
                if isinstance(a, str):
                    a, b = b, a
                if _is_ref(a) and isinstance(b, str) and "{" not in b:
                    out.setdefault(a["ref"], set()).add(b)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(rs["rules"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=OUT, help="the Rust table to write (default: %(default)s)")
    ap.add_argument("--no-table", dest="table", action="store_const", const=None,
                    help="do not write the table")
    ap.add_argument("--corpus", help="also write the host corpus (JSON lines) there")
    ap.add_argument("--check", action="store_true",
                    help="fail when the table differs from the committed src/endpoints_table.rs "
                         "(nothing is written there)")
    opts = ap.parse_args()
    EndpointRule.evaluate = _recording_evaluate  # which endpoint rules gave an endpoint
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
    for sfx, pids in list(EXTRA_SUFFIXES.items()) + list(HOST_ONLY_SUFFIXES.items()):
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

    from botocore.regions import EndpointResolver
    resolver = EndpointResolver(loader.load_data("endpoints"))
    rule_lib = RuleSetStandardLibrary({"partitions": partitions})
    part_ids = [p["id"] for p in partitions]

    def part_index(region):
        """The partition botocore puts a region in (a region of no partition: `aws`)."""
        return part_ids.index(rule_lib.aws_partition(region)["name"])

    services = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    records = []       # (host, name, region, auth, service, client region, partition index, fips, ds)
    unreached = []
    counts = {"reached": 0, "shadowed": 0, "dead": 0, "custom": 0, "no client": 0}
    n_eval = 0
    for svc in services:
        mdir = latest_model(data_dir, svc)
        if mdir is None:
            continue
        model = load_gz(os.path.join(mdir, "service-2.json.gz"))
        meta = model["metadata"]
        statics_values = {}
        host_prefixes = [""]
        for op in model["operations"].values():
            for k, v in op.get("staticContextParams", {}).items():
                if isinstance(v.get("value"), str):
                    statics_values.setdefault(k, set()).add(v["value"])
            hp = op.get("endpoint", {}).get("hostPrefix")
            if hp:
                hp = re.sub(r"\{[^}]*\}", PLACEHOLDER_STR, hp)
                if hp not in host_prefixes:
                    host_prefixes.append(hp)
        host_prefixes.sort()
        endpoint_prefix = meta["endpointPrefix"]
        rs = load_gz(os.path.join(mdir, "endpoint-rule-set-1.json.gz"))
        params = rs.get("parameters", {})
        provider = EndpointProvider(rs, {"partitions": partitions, "version": "1.1"})
        default_name, default_ok = service_auth(meta)
        literals = rule_literals(rs)
        # one parameter set (or a few) per endpoint rule
        sets = {}
        rule_objects = list(endpoint_rules(provider.ruleset.rules))
        paths = list(leaf_paths(rs["rules"]))
        if len(rule_objects) != len(paths):
            sys.exit("%s: rule tree not read as botocore reads it" % svc)
        wanted_rules = []
        for (conds, rule), obj in zip(paths, rule_objects):
            try:
                leaf = analyse_leaf(conds, params)
                pl, variants = leaf_params(leaf, params, statics_values, literals)
            except RuleError as e:
                sys.exit("%s: %s" % (svc, e))
            if leaf.needs_endpoint:
                counts["custom"] += 1
                continue
            wanted_rules.append((obj, conds, rule, leaf, pl, variants))
            for d in pl:
                key = json.dumps(d, sort_keys=True)
                entry = sets.setdefault(key, [d, set(), set()])
                entry[1].update(variants)
                entry[2].update(leaf.regions)
                if leaf.params.get("Region", {}).get("unset"):
                    entry[2].add(None)
        REACHED.clear()
        seen = set()
        bridges = {}
        for key in sorted(sets):
            extra, variants, lit_regions = sets[key]
            regions = [(pi, r) for pi, p in enumerate(partitions) for r in part_regions[p["id"]]]
            # the regions rules name (pseudo-regions too) and, when a rule asks for none,
            # no region (SDK clients of global services may have none)
            regions += [(part_index(r), r) for r in sorted(x for x in lit_regions if x)
                        if not any(r == x for _, x in regions)]
            if None in lit_regions:
                regions.append((0, None))
            for pi, region in regions:
                for fips, ds in sorted(variants):
                    bkey = (region, fips, ds)
                    if bkey not in bridges:
                        bridges[bkey] = bridge(resolver, meta, region, fips, ds, default_name,
                                               default_ok)
                    if bridges[bkey] is None:
                        counts["no client"] += 1
                        continue
                    bridge_name, bridge_region, bridge_ok = bridges[bkey]
                    args = instantiate(extra, partitions[pi]["id"], region, endpoint_prefix)
                    args.update(UseFIPS=fips, UseDualStack=ds)
                    if region is not None:
                        args["Region"] = region
                    n_eval += 1
                    try:
                        ep = provider.resolve_endpoint(**args)
                    except EndpointResolutionError:
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
                        auth = "V4" if bridge_ok else "NotV4"
                    if auth == "V4" and not sreg:
                        continue  # no region to sign with (a client without a region)
                    for hp in host_prefixes:
                        item = (hp + base_host, name, sreg, auth, svc, region, pi, fips, ds)
                        if item not in seen:
                            seen.add(item)
                            records.append(item)
        # An endpoint rule no parameter set reached is either dead (no partition has what its
        # path asks of the partition), shadowed (its path alone resolves with our parameters,
        # so an earlier rule answers first) or a rule we failed to evaluate: the run fails.
        for obj, conds, rule, leaf, pl, variants in wanted_rules:
            if id(obj) in REACHED:
                counts["reached"] += 1
            elif not leaf.possible_partition(partitions, part_index):
                counts["dead"] += 1
            elif path_resolves(rs, conds, rule, pl, variants, partitions, part_regions,
                               part_index, leaf.regions, endpoint_prefix):
                counts["shadowed"] += 1
            else:
                unreached.append((svc, rule["endpoint"].get("url")))
    print("%d evaluations, %d endpoint records; endpoint rules: %d reached, %d shadowed by an "
          "earlier rule, %d dead for every partition, %d need a custom endpoint; %d evaluations "
          "skipped: no botocore client for the region and variant" % (
              n_eval, len(records), counts["reached"], counts["shadowed"], counts["dead"],
              counts["custom"], counts["no client"]))
    if unreached:
        sys.exit("%d endpoint rules that no parameter set reaches:\n" % len(unreached) + "\n".join(
            "  %s: %s" % (svc, json.dumps(url)) for svc, url in unreached))

    prefixes = {}      # key -> {signing name: count}
    not_v4_prefixes = {}  # key -> count
    global_hosts = {}  # host -> {(name, region, auth): [partition index]}
    global_wild = {}   # rest -> {(name, region, auth): [partition index]}
    unknown_suffix = set()
    corpus = {}        # host -> row data
    prefix_hosts = {}  # host (or wildcard) -> [prefix, wildcard?, signing names, origins]
    for host, name, sreg, auth, svc, region, pi, fips, ds in records:
        rest, sfx = split_suffix(host)
        if rest is None:
            unknown_suffix.add(host)
            continue
        labels = rest.split(".")
        ph = [i for i, l in enumerate(labels) if is_placeholder(l)]
        first_literal = (ph[-1] + 1) if ph else 0
        last = labels[-1]
        if any(l in pseudo_regions and (sreg == l or auth == "NotV4") for l in labels):
            # a template filled with a pseudo-region (`aws-global`, `fips-us-east-1`, ...) that
            # it then signs for: not a real host
            continue
        add_corpus(corpus, host, name, sreg, auth, svc, partitions[pi]["id"], fips, ds)
        if sfx not in HOST_ONLY_SUFFIXES and any(part_regex[q].match(last) for q in suffix_parts[sfx]):
            key = normalise(labels[first_literal:-1])
            if not key:
                # nothing but customer labels before the region (S3 Express zonal endpoints,
                # `BUCKET--AZ--x-s3.s3express-AZ.REGION`): the parser's own rule
                continue
            if auth == "V4" and sreg == last:
                prefixes.setdefault(key, {}).setdefault(name, 0)
                prefixes[key][name] += 1
                ph_host = ".".join(labels[first_literal:] + [sfx]) if ph else host
                prefix_hosts.setdefault(ph_host, [key, bool(ph), set(), set()])
                prefix_hosts[ph_host][2].add(name)
                prefix_hosts[ph_host][3].add((pi, region))
                continue
            if auth == "NotV4":
                not_v4_prefixes[key] = not_v4_prefixes.get(key, 0) + 1
                continue
        target = global_wild if ph else global_hosts
        k = ".".join(labels[first_literal:] + [sfx]) if ph else host
        target.setdefault(k, {}).setdefault((name, sreg if auth == "V4" else "", auth),
                                            set()).add((pi, region))

    unknown_suffix -= NOT_AWS_HOSTS
    if unknown_suffix:
        sys.exit("hosts under no known AWS DNS suffix (add the suffix to EXTRA_SUFFIXES or "
                 "HOST_ONLY_SUFFIXES once it is known to be AWS's): " + ", ".join(sorted(unknown_suffix)))

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
    # A host of a prefix whose signing name is not the prefix's (AWS Import/Export's
    # `importexport.us-east-1.api.aws` signs as `IngestionService`) is kept as an exact host,
    # which the parser looks up first.
    best_name = dict(prefix_rows)
    for h, (key, wild, names, origins) in sorted(prefix_hosts.items()):
        if key in best_name and best_name[key] not in names:
            if len(names) != 1:
                sys.exit("host %s of prefix %s signs as %s" % (h, key, sorted(names)))
            name = next(iter(names))
            region = h.split(".")[-1 - len(split_suffix(h)[1].split("."))]
            target = global_wild if wild else global_hosts
            target.setdefault(h, {}).setdefault((name, region, "V4"), set()).update(origins)

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
            if sfx in HOST_ONLY_SUFFIXES:
                continue
            for r in region_prefixes(p["regionRegex"]):
                if r not in pre:
                    pre.append(r)
        suffix_rows.append((sfx, sorted(pre)))

    # A wildcard is the literal labels of a global host below customer labels; one that starts
    # with a region would sign any name under that region.
    for h, _n, _r, _a in wild_rows:
        rest, sfx = split_suffix(h)
        if "." not in rest and any(part_regex[q].match(rest) for q in part_regex):
            sys.exit("global wildcard of a region alone: " + h)

    if opts.check:
        check_dir = os.path.dirname(os.path.abspath(opts.corpus or OUT))
        os.makedirs(check_dir, exist_ok=True)
        check = os.path.join(check_dir, "endpoints_table.rs.check")
        write(check, prefix_rows, not_v4_rows, global_rows, wild_rows, suffix_rows)
        with open(check) as a, open(OUT) as b:
            same = a.read() == b.read()
        os.remove(check)
        if not same:
            sys.exit("src/endpoints_table.rs is not what botocore %s gives: run `make "
                     "endpoints-table`" % botocore.__version__)
        print("src/endpoints_table.rs is current")
    elif opts.table:
        write(opts.table, prefix_rows, not_v4_rows, global_rows, wild_rows, suffix_rows)
    if opts.corpus:
        write_corpus(opts.corpus, corpus)
        print("wrote %s: %d hosts from %d services" % (
            opts.corpus, len(corpus), len({s for c in corpus.values() for s in c["services"]})))


VARIANT_NAMES = {(False, False): "default", (True, False): "fips", (False, True): "dualstack",
                 (True, True): "fips-dualstack"}


def add_corpus(corpus, host, name, sreg, auth, svc, partition, fips, ds):
    row = corpus.setdefault(host, {"pairs": set(), "not_v4": set(), "services": set(),
                                   "partitions": [], "variants": set()})
    if auth == "V4":
        row["pairs"].add((name, sreg))
    else:
        row["not_v4"].add(name)
    row["services"].add(svc)
    if partition not in row["partitions"]:
        row["partitions"].append(partition)
    row["variants"].add(VARIANT_NAMES[(fips, ds)])


def corpus_rows(corpus):
    """One row per host, the fields of tests/data/aws-hosts/README.md."""
    for host in sorted(corpus):
        c = corpus[host]
        row = {"host": host}
        if not c["pairs"]:
            row["kind"] = "not-sigv4"
            row["accept"] = [[n, "*"] for n in sorted(c["not_v4"])]
        else:
            names = {n for n, _ in c["pairs"]}
            regions = {r for _, r in c["pairs"]}
            if c["not_v4"]:
                row["kind"] = "mixed-auth"
            elif len(regions) > 1:
                row["kind"] = "ambiguous-region"
            elif len(names) > 1:
                row["kind"] = "ambiguous-name"
            else:
                row["kind"] = "unique"
            row["accept"] = sorted([n, r] for n, r in c["pairs"])
            if row["kind"] == "unique":
                row["signing_name"], row["signing_region"] = next(iter(c["pairs"]))
        row["services"] = sorted(c["services"])
        row["partition"] = c["partitions"][0]
        row["variant"] = sorted(c["variants"])
        yield row


def write_corpus(path, corpus):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for row in corpus_rows(corpus):
            f.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, path)


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


def write(path, prefix_rows, not_v4_rows, global_rows, wild_rows, suffix_rows):
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
    with open(path, "w") as f:
        f.write("\n".join(out))
    # rustfmt the output so `cargo fmt --check` stays clean (deterministic)
    subprocess.run(["rustfmt", "--edition", "2021", path], check=True)
    print("wrote %s: %d prefixes, %d not-sigv4, %d global hosts, %d wildcards, %d suffixes" % (
        path, len(prefix_rows), len(not_v4_rows), len(global_rows), len(wild_rows), len(suffix_rows)))


def auth_name(a):
    return {"V4": "SigV4", "NotV4": "NotSigV4", "RegionUnknown": "RegionUnknown"}[a]


if __name__ == "__main__":
    main()
