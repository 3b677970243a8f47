// The AWS SDK for JavaScript v3 unmodified: static placeholder credentials whose access key
// id is the grant id, an http:// endpoint per service, and a connection to Envoy. Envoy runs
// with "grant_from_access_key_id": true; moto verifies every signature.
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";

import { CreateTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

import { proxyAgent } from "../src/index.js";
import { GRANT, PROXY, USER } from "./env.js";

// All a service needs: the grant id as the access key id, any secret, the endpoint over
// http, and a socket to Envoy (Node's SDK has no HTTP_PROXY support).
const common = {
  region: "us-east-1",
  credentials: { accessKeyId: GRANT, secretAccessKey: "unused" },
  requestHandler: { httpAgent: proxyAgent(PROXY) },
  maxAttempts: 1,
};

test("placeholder key: STS GetCallerIdentity is the grant's user", async () => {
  const sts = new STSClient({ ...common, endpoint: "http://sts.us-east-1.amazonaws.com" });
  const out = await sts.send(new GetCallerIdentityCommand({}));
  assert.ok(out.Arn?.endsWith(`:user/${USER}`), out.Arn);
  sts.destroy();
});

test("placeholder key: S3 put, list, get with the SDK's default checksums", async () => {
  // Default checksum settings of the SDK (CRC32 on PutObject): the checksum travels in an
  // x-amz-checksum-crc32 header, which the filter signs like any x-amz-* header.
  const s3 = new S3Client({ ...common, endpoint: "http://s3.us-east-1.amazonaws.com", forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: "ts-placeholder" }));
  await s3.send(new PutObjectCommand({ Bucket: "ts-placeholder", Key: "k.txt", Body: "from the js sdk" }));
  // A stream body: the SDK sends it aws-chunked with a CRC32 trailer
  // (STREAMING-UNSIGNED-PAYLOAD-TRAILER), which the filter signs as it is.
  await s3.send(
    new PutObjectCommand({
      Bucket: "ts-placeholder",
      Key: "streamed.txt",
      Body: Readable.from([Buffer.from("streamed "), Buffer.from("body")]),
      ContentLength: 13,
    }),
  );
  const streamed = await s3.send(new GetObjectCommand({ Bucket: "ts-placeholder", Key: "streamed.txt" }));
  assert.equal(await streamed.Body!.transformToString(), "streamed body");
  const big = Buffer.alloc(3 * 1024 * 1024, 7);
  await s3.send(new PutObjectCommand({ Bucket: "ts-placeholder", Key: "big.bin", Body: big }));
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: "ts-placeholder" }));
  assert.deepEqual(listed.Contents?.map((o) => o.Key).sort(), ["big.bin", "k.txt", "streamed.txt"]);
  const got = await s3.send(new GetObjectCommand({ Bucket: "ts-placeholder", Key: "k.txt" }));
  assert.equal(await got.Body!.transformToString(), "from the js sdk");
  const gotBig = await s3.send(new GetObjectCommand({ Bucket: "ts-placeholder", Key: "big.bin" }));
  assert.ok(Buffer.from(await gotBig.Body!.transformToByteArray()).equals(big));
  s3.destroy();
});

test("placeholder key: DynamoDB put and get", async () => {
  const ddb = new DynamoDBClient({ ...common, endpoint: "http://dynamodb.us-east-1.amazonaws.com" });
  await ddb.send(
    new CreateTableCommand({
      TableName: "ts-placeholder",
      KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
  await ddb.send(new PutItemCommand({ TableName: "ts-placeholder", Item: { id: { S: "1" }, v: { N: "42" } } }));
  const item = await ddb.send(new GetItemCommand({ TableName: "ts-placeholder", Key: { id: { S: "1" } } }));
  assert.equal(item.Item?.v?.N, "42");
  ddb.destroy();
});

test("placeholder key: SQS create, send, receive", async () => {
  const sqs = new SQSClient({ ...common, endpoint: "http://sqs.us-east-1.amazonaws.com" });
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "ts-placeholder" }));
  assert.ok(QueueUrl);
  await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: "hello queue" }));
  const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 1, WaitTimeSeconds: 0 }));
  assert.equal(got.Messages?.[0]?.Body, "hello queue");
  sqs.destroy();
});

test("placeholder key: a client configured for another region is refused with both named", async () => {
  const sts = new STSClient({ ...common, region: "eu-west-1", endpoint: "http://sts.us-east-1.amazonaws.com" });
  await assert.rejects(sts.send(new GetCallerIdentityCommand({})), (e: unknown) => {
    const err = e as { $metadata?: { httpStatusCode?: number }; $response?: unknown; message: string };
    assert.equal(err.$metadata?.httpStatusCode, 400, String(e));
    return true;
  });
  sts.destroy();
});
