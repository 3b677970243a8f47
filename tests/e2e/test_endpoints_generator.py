"""scripts/gen_endpoints_table.py reads each endpoint rule's path and builds the parameters it
asks for; botocore's own rule engine must then reach that rule. Checked on small rule sets
shaped like the real ones (an ARN parameter, a compared string, substrings counted from either
end) and on botocore's Kinesis and DynamoDB rule sets, and a rule the generator cannot read
must fail it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import botocore
import botocore.session
import pytest
from botocore.endpoint_provider import EndpointProvider

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_endpoints_table.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_endpoints_table", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def partitions():
    return botocore.session.get_session().get_component("data_loader").load_data("partitions")["partitions"]


PARAMS = {
    "Region": {"type": "string", "builtIn": "AWS::Region"},
    "UseFIPS": {"type": "boolean", "builtIn": "AWS::UseFIPS", "required": True, "default": False},
    "UseDualStack": {"type": "boolean", "builtIn": "AWS::UseDualStack", "required": True, "default": False},
    "Endpoint": {"type": "string", "builtIn": "SDK::Endpoint"},
    "ThingARN": {"type": "string"},
    "Mode": {"type": "string"},
    "Name": {"type": "string"},
}


def ref(name):
    return {"ref": name}


def fn(name, *argv, assign=None):
    out = {"fn": name, "argv": list(argv)}
    if assign:
        out["assign"] = assign
    return out


def ruleset(conditions, url):
    partition = [fn("isSet", ref("Region")), fn("aws.partition", ref("Region"), assign="P")]
    return {"version": "1.0", "parameters": PARAMS, "rules": [
        {"type": "endpoint", "conditions": partition + conditions,
         "endpoint": {"url": url, "properties": {}, "headers": {}}},
        {"type": "error", "conditions": [], "error": "unreached"},
    ]}


def resolve_each(gen, partitions, rs, regions=("us-east-1", "cn-north-1", "eusc-de-east-1")):
    """The hosts botocore gives for the generator's parameter sets of the first rule."""
    (conds, _rule), *_ = list(gen.leaf_paths(rs["rules"]))
    leaf = gen.analyse_leaf(conds, rs["parameters"])
    sets, variants = gen.leaf_params(leaf, rs["parameters"], {}, gen.rule_literals(rs))
    provider = EndpointProvider(rs, {"partitions": partitions, "version": "1.1"})
    part_of = {r: p["id"] for p in partitions for r in p["regions"]}
    hosts = []
    for extra in sets:
        for region in regions:
            for fips, ds in variants:
                args = gen.instantiate(extra, part_of[region], region, "thing")
                args.update(Region=region, UseFIPS=fips, UseDualStack=ds)
                hosts.append(provider.resolve_endpoint(**args).url)
    return hosts


def test_an_arn_parameter_gets_a_well_formed_arn_per_partition(gen, partitions):
    conds = [
        fn("aws.parseArn", ref("ThingARN"), assign="arn"),
        fn("stringEquals", fn("getAttr", ref("arn"), "service"), "thing"),
        fn("getAttr", ref("arn"), "resourceId[0]", assign="kind"),
        fn("stringEquals", ref("kind"), "stream"),
        fn("getAttr", ref("arn"), "resourceId[1]", assign="name"),
        fn("isValidHostLabel", ref("name"), False),
        fn("stringEquals", fn("getAttr", ref("P"), "name"), "{arn#partition}"),
        fn("stringEquals", fn("getAttr", ref("arn"), "region"), "{Region}"),
        fn("isValidHostLabel", fn("getAttr", ref("arn"), "accountId"), False),
        fn("stringEquals", ref("Mode"), "data"),
    ]
    hosts = resolve_each(gen, partitions, ruleset(conds, "https://{arn#accountId}.{Mode}-thing.{Region}.{P#dnsSuffix}"))
    assert sorted(set(hosts)) == [
        "https://123456789012.data-thing.cn-north-1.amazonaws.com.cn",
        "https://123456789012.data-thing.eusc-de-east-1.amazonaws.eu",
        "https://123456789012.data-thing.us-east-1.amazonaws.com",
    ]


def test_substrings_counted_from_either_end(gen, partitions):
    # like Kinesis's stream id (a '-' at 20 and 4 from the end) and S3 Express's bucket suffix
    conds = [
        fn("substring", ref("Name"), 20, 21, False, assign="d1"),
        fn("stringEquals", ref("d1"), "-"),
        fn("substring", ref("Name"), 3, 4, True, assign="d2"),
        fn("stringEquals", ref("d2"), "-"),
        fn("substring", ref("Name"), 0, 20, False, assign="head"),
        fn("substring", ref("Name"), 21, 24, False, assign="tail"),
    ]
    hosts = resolve_each(gen, partitions, ruleset(conds, "https://{head}.{tail}.thing.{Region}.{P#dnsSuffix}"),
                         regions=("us-east-1",))
    assert set(hosts) == {"https://zzzzzzzzzzzzzzzzzzzz.zzz.thing.us-east-1.amazonaws.com"}
    assert gen.substring_value([(0, 6, True, "--x-s3"), (14, 16, True, "--")], 0) == "zzexample--zzzzzzzz--x-s3"


def test_a_condition_it_cannot_read_fails_the_run(gen):
    rs = ruleset([fn("aws.someNewFunction", ref("Name"))], "https://thing.{Region}.{P#dnsSuffix}")
    (conds, _rule), *_ = list(gen.leaf_paths(rs["rules"]))
    with pytest.raises(gen.RuleError, match="unknown function aws.someNewFunction"):
        gen.analyse_leaf(conds, rs["parameters"])
    rs = ruleset([fn("getAttr", ref("NoSuchName"), "x", assign="y")], "https://thing.{Region}.{P#dnsSuffix}")
    (conds, _rule), *_ = list(gen.leaf_paths(rs["rules"]))
    with pytest.raises(gen.RuleError, match="unknown name NoSuchName"):
        gen.analyse_leaf(conds, rs["parameters"])


@pytest.mark.parametrize("service,template", [
    ("kinesis", "https://{arn#accountId}.{OperationType}-kinesis.{Region}.{PartitionResult#dnsSuffix}"),
    ("kinesis", "https://{AccountId}.{OperationType}-kinesis-fips.{Region}.{PartitionResult#dualStackDnsSuffix}"),
    ("dynamodb", "https://{ParsedArn#accountId}.ddb.{Region}.{PartitionResult#dnsSuffix}"),
])
def test_botocore_rules_built_from_arns_and_accounts_are_reached(gen, partitions, service, template):
    """The generator's parameter sets for these endpoint rules of botocore's own rule sets
    reach them in botocore's rule engine (the rule set as a whole, not the path alone)."""
    data = Path(botocore.__file__).parent / "data"
    mdir = gen.latest_model(str(data), service)
    rs = gen.load_gz(os.path.join(mdir, "endpoint-rule-set-1.json.gz"))
    model = gen.load_gz(os.path.join(mdir, "service-2.json.gz"))
    statics = {}
    for op in model["operations"].values():
        for k, v in op.get("staticContextParams", {}).items():
            if isinstance(v.get("value"), str):
                statics.setdefault(k, set()).add(v["value"])
    provider = EndpointProvider(rs, {"partitions": partitions, "version": "1.1"})
    rules = list(gen.endpoint_rules(provider.ruleset.rules))
    paths = list(gen.leaf_paths(rs["rules"]))
    wanted = [(conds, obj) for (conds, rule), obj in zip(paths, rules) if rule["endpoint"]["url"] == template]
    assert wanted, template
    reached = set()
    original = gen.EndpointRule.evaluate

    def recording(self, scope_vars, rule_lib):
        out = original(self, scope_vars, rule_lib)
        if out is not None:
            reached.add(id(self))
        return out

    gen.EndpointRule.evaluate = recording
    try:
        for conds, obj in wanted:
            leaf = gen.analyse_leaf(conds, rs["parameters"])
            sets, variants = gen.leaf_params(leaf, rs["parameters"], statics, gen.rule_literals(rs))
            for extra in sets:
                for fips, ds in variants:
                    args = gen.instantiate(extra, "aws", "eu-west-2", model["metadata"]["endpointPrefix"])
                    args.update(Region="eu-west-2", UseFIPS=fips, UseDualStack=ds)
                    try:
                        provider.resolve_endpoint(**args)
                    except botocore.exceptions.EndpointResolutionError:
                        pass
            assert id(obj) in reached, (template, sets)
    finally:
        gen.EndpointRule.evaluate = original
