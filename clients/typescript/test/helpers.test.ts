// request() and awsClient() against the real Envoy, OpenBao and moto (signatures verified).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { test } from "node:test";

import { DynamoDBClient, GetItemCommand, PutItemCommand, CreateTableCommand } from "@aws-sdk/client-dynamodb";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchBucket,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

import { GrantSigV4Error, awsClient, bodySha256, grantHeaders, parseFilterError, request } from "../src/index.js";
import { GRANT, PROXY, USER, upstreamRequests } from "./env.js";

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const BUCKET = "ts-helpers";
const BLOB = Buffer.alloc(3 * 1024 * 1024);
for (let i = 0; i < BLOB.length; i++) BLOB[i] = i % 256;

/** Every request's headers as the SDK hands them to the HTTP handler. */
function captureHeaders(client: { middlewareStack: { add: Function } }): Record<string, string>[] {
  const seen: Record<string, string>[] = [];
  client.middlewareStack.add(
    (next: Function) => async (args: { request: unknown }) => {
      seen.push({ ...(args.request as { headers: Record<string, string> }).headers });
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "captureHeaders" },
  );
  return seen;
}

test("awsClient: endpoint from the SDK's own resolution, with http", async () => {
  const ddb = awsClient(DynamoDBClient, { grantId: GRANT, region: "eu-west-1" });
  const ep = await ddb.config.endpoint!();
  assert.equal(`${ep.protocol}//${ep.hostname}${ep.path}`, "http://dynamodb.eu-west-1.amazonaws.com/");
  const sts = awsClient(STSClient, { grantId: GRANT, region: "us-west-2", proxy: null });
  const sep = await sts.config.endpoint!();
  assert.equal(sep.hostname, "sts.us-west-2.amazonaws.com");
  assert.equal(sep.protocol, "http:");
  ddb.destroy();
  sts.destroy();
});

test("awsClient: STS GetCallerIdentity with reason and context", async () => {
  const sts = awsClient(STSClient, { grantId: GRANT, proxy: PROXY, reason: "ts audit", context: { n: 2, ticket: "OPS-1" } });
  const seen = captureHeaders(sts);
  const out = await sts.send(new GetCallerIdentityCommand({}));
  assert.ok(out.Arn?.endsWith(`:user/${USER}`), out.Arn);
  const h = seen.at(-1)!;
  assert.equal(h["x-grant-id"], GRANT);
  assert.equal(h["x-grant-reason"], "ts audit");
  assert.equal(h["x-grant-context"], '{"n":2,"ticket":"OPS-1"}');
  sts.destroy();
});

test("awsClient: S3 put, list and get; request() streams a 3 MiB download", async () => {
  const s3 = awsClient(S3Client, { grantId: GRANT, proxy: PROXY });
  const seen = captureHeaders(s3);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "a b/c.txt", Body: "hello ts" }));
  assert.ok(seen.some((h) => h["x-amz-content-sha256"] === sha256("hello ts")), "PutObject carried the body's SHA-256");
  // Checksums only where required: no CRC32 on PutObject.
  assert.ok(seen.every((h) => !Object.keys(h).some((k) => k.startsWith("x-amz-checksum-"))), JSON.stringify(seen));
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "big.bin", Body: BLOB }));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
  assert.deepEqual(listed.Contents?.map((o) => o.Key).sort(), ["a b/c.txt", "big.bin"]);
  const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "a b/c.txt" }));
  assert.equal(await got.Body!.transformToString(), "hello ts");

  const url = `http://s3.amazonaws.com/${BUCKET}/big.bin`;
  const r = await request("GET", url, { grantId: GRANT, proxy: PROXY, stream: true, timeout: 10_000 });
  assert.equal(r.status, 200);
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c);
  assert.ok(chunks.length > 1, `streamed in ${chunks.length} chunk(s)`);
  assert.ok(Buffer.concat(chunks).equals(BLOB));
  // Not streamed: the whole body at once.
  const whole = await request("GET", url, { grantId: GRANT, proxy: PROXY, reason: "copy", context: { k: "v" } });
  assert.equal(whole.status, 200);
  assert.ok((await whole.buffer()).equals(BLOB));
  s3.destroy();
});

test("request(): a streamed upload to S3 (UNSIGNED-PAYLOAD)", async () => {
  const body = Readable.from([Buffer.from("part one, "), Buffer.from("part two")]);
  const put = await request("PUT", `http://s3.amazonaws.com/${BUCKET}/streamed.txt`, {
    grantId: GRANT,
    proxy: PROXY,
    body,
    headers: { "content-length": "18" },
  });
  assert.equal(put.status, 200, await put.text());
  const get = await request("GET", `http://s3.amazonaws.com/${BUCKET}/streamed.txt`, { grantId: GRANT, proxy: PROXY });
  assert.equal(await get.text(), "part one, part two");
});

test("awsClient: DynamoDB put and get set x-amz-content-sha256", async () => {
  const ddb = awsClient(DynamoDBClient, { grantId: GRANT, proxy: PROXY });
  await ddb.send(
    new CreateTableCommand({
      TableName: "ts-helpers",
      KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  const bodies: { headers: Record<string, string>; body: string }[] = [];
  ddb.middlewareStack.add(
    (next: Function) => async (args: { request: unknown }) => {
      const r = args.request as { headers: Record<string, string>; body: string };
      bodies.push({ headers: { ...r.headers }, body: r.body });
      return next(args);
    },
    { step: "finalizeRequest", priority: "low", name: "captureBodies" },
  );
  await ddb.send(new PutItemCommand({ TableName: "ts-helpers", Item: { id: { S: "1" }, msg: { S: "héllo" } } }));
  const last = bodies.at(-1)!;
  assert.equal(last.headers["x-amz-content-sha256"], sha256(last.body));
  const item = await ddb.send(new GetItemCommand({ TableName: "ts-helpers", Key: { id: { S: "1" } } }));
  assert.equal(item.Item?.msg?.S, "héllo");
  // A raw JSON call with request().
  const r = await request("POST", "http://dynamodb.us-east-1.amazonaws.com/", {
    grantId: GRANT,
    proxy: PROXY,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.GetItem" },
    body: JSON.stringify({ TableName: "ts-helpers", Key: { id: { S: "1" } } }),
  });
  assert.equal(r.status, 200);
  assert.equal(((await r.json()) as { Item: { id: { S: string } } }).Item.id.S, "1");
  ddb.destroy();
});

test("awsClient: AWS errors stay the SDK's exceptions", async () => {
  const s3 = awsClient(S3Client, { grantId: GRANT, proxy: PROXY });
  await assert.rejects(s3.send(new GetObjectCommand({ Bucket: "no-such-bucket-ts", Key: "x" })), (e: unknown) => {
    assert.ok(e instanceof NoSuchBucket, String(e));
    assert.ok(e instanceof S3ServiceException);
    assert.ok(!(e instanceof GrantSigV4Error));
    return true;
  });
  const ddb = awsClient(DynamoDBClient, { grantId: GRANT, proxy: PROXY });
  await assert.rejects(ddb.send(new GetItemCommand({ TableName: "no-such-table", Key: { id: { S: "1" } } })), (e: unknown) => {
    assert.equal((e as Error).name, "ResourceNotFoundException");
    return true;
  });
  s3.destroy();
  ddb.destroy();
});

test("awsClient: an unknown grant is GrantSigV4Error GrantNotFound, nothing sent upstream", async () => {
  const before = await upstreamRequests();
  const sts = awsClient(STSClient, { grantId: "no-such-grant-ts", proxy: PROXY, config: { maxAttempts: 1 } });
  await assert.rejects(sts.send(new GetCallerIdentityCommand({})), (e: unknown) => {
    assert.ok(e instanceof GrantSigV4Error, String(e));
    assert.equal(e.status, 403);
    assert.equal(e.code, "GrantNotFound");
    assert.equal(e.retryable, false);
    return true;
  });
  assert.equal(await upstreamRequests(), before);
  sts.destroy();
});

test("request(): the filter's refusals throw, AWS errors are responses", async () => {
  const missing = await request("GET", `http://s3.amazonaws.com/${BUCKET}/missing`, { grantId: GRANT, proxy: PROXY });
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /NoSuchKey/);
  await assert.rejects(
    request("GET", `http://s3.amazonaws.com/${BUCKET}/big.bin`, { grantId: "nope-grant", proxy: PROXY, stream: true }),
    (e: unknown) => e instanceof GrantSigV4Error && e.status === 403 && e.code === "GrantNotFound",
  );
  await assert.rejects(
    request("GET", "http://example.com/", { grantId: GRANT, proxy: PROXY }),
    (e: unknown) => e instanceof GrantSigV4Error && e.status === 403 && e.code === "NotAwsEndpoint",
  );
  await assert.rejects(request("GET", "https://s3.amazonaws.com/", { grantId: GRANT, proxy: PROXY }), RangeError);
});

test("empty or absent grants are refused before sending", async () => {
  assert.throws(() => awsClient(STSClient, { grantId: "" }), (e: unknown) => e instanceof GrantSigV4Error && e.code === "GrantInvalid" && e.status === undefined);
  await assert.rejects(
    request("GET", "http://sts.us-east-1.amazonaws.com/", { grantId: undefined as unknown as string, proxy: PROXY }),
    (e: unknown) => e instanceof GrantSigV4Error && e.code === "GrantMissing",
  );
  assert.throws(() => grantHeaders(GRANT, "line\nbreak"), RangeError);
});

test("units: body hash, error parsing, context JSON", () => {
  const empty = sha256("");
  assert.equal(bodySha256(undefined), empty);
  assert.equal(bodySha256(""), empty);
  assert.equal(bodySha256("é"), sha256(Buffer.from("é", "utf8")));
  assert.equal(bodySha256(new Uint8Array([1, 2])), sha256(new Uint8Array([1, 2])));
  assert.equal(bodySha256(Readable.from(["x"])), undefined);
  const js = { "content-type": "application/json" };
  const ok = parseFilterError(403, js, Buffer.from('{"error":"GrantNotFound","message":"m"}'))!;
  assert.equal(ok.code, "GrantNotFound");
  assert.equal(ok.message, "m");
  assert.equal(String(ok), "GrantSigV4Error: 403 GrantNotFound: m");
  assert.equal(parseFilterError(503, js, '{"error":"VaultUnavailable","message":"m"}')!.retryable, true);
  assert.equal(parseFilterError(200, js, '{"error":"X","message":"m"}'), undefined);
  assert.equal(parseFilterError(400, js, '{"__type":"ValidationException","message":"m"}'), undefined);
  assert.equal(parseFilterError(403, { ...js, "x-amzn-requestid": "r" }, '{"error":"Forbidden","message":"m"}'), undefined);
  assert.equal(parseFilterError(403, { "content-type": "text/plain" }, '{"error":"A","message":"m"}'), undefined);
  // As the Python helper writes it: keys sorted, compact, non-ASCII escaped.
  assert.equal(grantHeaders("g", undefined, { z: 1, a: "é" })["x-grant-context"], '{"a":"\\u00e9","z":1}');
});
