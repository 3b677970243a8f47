"""The compose demo's client: the flow of scripts/demo.py against the compose services.

Every compose service shares one network namespace (docker-compose.yml), so OpenBao, moto and
Envoy are on 127.0.0.1 at fixed ports. Set-up (three direct calls to moto and one write to
OpenBao), then S3, DynamoDB and STS through Envoy with only the grant id, using the
grant_sigv4_client helpers.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import boto3

from grant_sigv4_client import GrantSigV4Error, boto3_client, request

BAO = "http://127.0.0.1:8200"
MOTO = "http://127.0.0.1:5000"
ENVOY_ADMIN = "http://127.0.0.1:9901"
PROXY = "http://127.0.0.1:15080"
TOKEN = os.environ.get("VAULT_TOKEN", "grant-sigv4-demo-root")
GRANT = "demo-grant-1"


def step(text):
    print(f"\n== {text}", flush=True)


def get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait(url, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"{what} not ready at {url}")


def main():
    step("waiting for OpenBao, moto and Envoy")
    wait(f"{BAO}/v1/sys/health", "OpenBao")
    wait(f"{MOTO}/moto-api/", "moto")
    wait(f"{ENVOY_ADMIN}/ready", "Envoy")

    step("creating an IAM user and access key in the AWS stand-in (the set-up calls)")
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=MOTO,
                       aws_access_key_id="AKIDSETUPONLY0000000", aws_secret_access_key="setup-only")
    iam.create_user(UserName="demo-user")
    iam.put_user_policy(UserName="demo-user", PolicyName="allow-all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="demo-user")["AccessKey"]
    print(f"   access key id {key['AccessKeyId']} (the secret stays in the vault)")

    step(f"storing the key in OpenBao KV v2 at secret/aws/grants/{GRANT}")
    data = json.dumps({"data": {"access_key_id": key["AccessKeyId"],
                                "secret_access_key": key["SecretAccessKey"]}}).encode()
    req = urllib.request.Request(f"{BAO}/v1/secret/data/aws/grants/{GRANT}", data=data, method="POST",
                                 headers={"X-Vault-Token": TOKEN})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200

    step("calling AWS through Envoy with grant_sigv4_client (no AWS key in this process)")
    sts = boto3_client("sts", GRANT, proxy=PROXY)
    print(f"   sts      GetCallerIdentity -> {sts.get_caller_identity()['Arn']}")
    s3 = boto3_client("s3", GRANT, proxy=PROXY)
    s3.create_bucket(Bucket="demo-bucket")
    s3.put_object(Bucket="demo-bucket", Key="reports/2026 Q4 (final).txt", Body=b"signed by envoy")
    body = s3.get_object(Bucket="demo-bucket", Key="reports/2026 Q4 (final).txt")["Body"].read()
    print(f"   s3       PutObject + GetObject -> {body!r}")
    ddb = boto3_client("dynamodb", GRANT, proxy=PROXY)
    ddb.create_table(TableName="demo", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="demo", Item={"id": {"S": "1"}, "msg": {"S": "hello"}})
    item = ddb.get_item(TableName="demo", Key={"id": {"S": "1"}})["Item"]
    print(f"   dynamodb PutItem + GetItem -> {item['msg']['S']!r}")

    step("an unknown grant is answered by the filter, never forwarded")
    try:
        request("GET", "http://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
                "no-such-grant", proxy=PROXY)
    except GrantSigV4Error as e:
        print(f"   {e}")

    step("counters")
    stats = {s["name"]: s.get("value") for s in json.loads(get(f"{ENVOY_ADMIN}/stats?format=json")[1])["stats"]
             if "name" in s}
    print(f"   requests Envoy sent to AWS:    {stats.get('cluster.aws.upstream_rq_total')}")
    print(f"   vault callouts (cached after): {stats.get('cluster.vault.upstream_rq_total')}")
    print("\nDemo finished: three AWS services answered through one grant.")


if __name__ == "__main__":
    main()
