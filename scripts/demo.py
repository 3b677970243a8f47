"""`make demo`: start OpenBao, moto (the AWS stand-in, verifying every SigV4 signature) and
Envoy with the grant-sigv4 filter on 127.0.0.1; store an AWS key under a grant; then call
S3, DynamoDB and STS with boto3 *without* any AWS key, through Envoy, with only the grant id.
Everything is stopped at the end or on Ctrl-C.

`make demo HOST=native` (environment GRANT_SIGV4_DEMO_HOST=native) runs the native dynamic
module instead of the wasm filter."""

import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "clients" / "python"))

from grant_sigv4_client import GrantSigV4Error, boto3_client  # noqa: E402
from harness import Stack  # noqa: E402


def step(text):
    print(f"\n== {text}", flush=True)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    host = os.environ.get("GRANT_SIGV4_DEMO_HOST", "wasm")
    what = "wasm filter" if host == "wasm" else "native dynamic module"
    step(f"starting OpenBao, moto and Envoy (grant-sigv4 {what}) on 127.0.0.1")
    stack = Stack(host=host)
    try:
        print(f"   OpenBao  {stack.bao.addr}")
        print(f"   moto     {stack.moto.endpoint}  (verifies SigV4 after the set-up calls)")
        print(f"   Envoy    {stack.proxy}  (admin {stack.envoy.admin})")

        step("creating an IAM user and access key in the AWS stand-in (the set-up calls)")
        creds = stack.moto.create_user_key("demo-user")
        print(f"   access key id {creds['access_key_id']} (the secret stays in the vault)")

        grant = "demo-grant-1"
        step(f"storing the key in OpenBao KV v2 at secret/aws/grants/{grant}")
        stack.bao.put_grant(grant, creds)

        step("calling AWS through Envoy with the Python helpers: boto3 clients holding no AWS key")
        print(f'   boto3_client("sts", grant_id="{grant}", proxy="{stack.proxy}", reason="demo")')

        def client(service):
            return boto3_client(service, grant_id=grant, proxy=stack.proxy, reason="demo",
                                context={"step": service})

        sts = client("sts")
        print(f"   sts      GetCallerIdentity -> {sts.get_caller_identity()['Arn']}")

        s3 = client("s3")
        s3.create_bucket(Bucket="demo-bucket")
        s3.put_object(Bucket="demo-bucket", Key="reports/2026 Q4 (final).txt", Body=b"signed by envoy")
        body = s3.get_object(Bucket="demo-bucket", Key="reports/2026 Q4 (final).txt")["Body"].read()
        print(f"   s3       PutObject + GetObject -> {body!r}")

        ddb = client("dynamodb")
        ddb.create_table(
            TableName="demo",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="demo", Item={"id": {"S": "1"}, "msg": {"S": "hello"}})
        item = ddb.get_item(TableName="demo", Key={"id": {"S": "1"}})["Item"]
        print(f"   dynamodb PutItem + GetItem -> {item['msg']['S']!r}")

        step("a grant that does not exist is answered by the filter, never forwarded")
        try:
            boto3_client("sts", grant_id="no-such-grant", proxy=stack.proxy).get_caller_identity()
        except GrantSigV4Error as e:
            print(f"   {e.status} {e.code}: {e.message}")

        step("counters")
        print(f"   requests Envoy sent to AWS:   {stack.upstream_requests()}")
        print(f"   vault callouts (cached after): {stack.vault_requests()}")
        print("\nDemo finished: three AWS services answered through one grant.")
    except KeyboardInterrupt:
        print("\ninterrupted")
    finally:
        stack.stop()
        stack.cleanup()
        print("all processes stopped")


if __name__ == "__main__":
    main()
