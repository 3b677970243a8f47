/**
 * Helpers for Node.js applications that call AWS through Envoy with the grant-sigv4 filter.
 *
 * The application holds no AWS key: it sends plain requests to
 * `http://SERVICE.REGION.amazonaws.com` with an `x-grant-id` header, through the egress Envoy
 * (as an HTTP proxy, or directly in an Istio mesh with `proxy: null`). Envoy fetches the
 * grant's key from the vault, signs with SigV4 and originates TLS to AWS.
 *
 * - {@link awsClient} returns a normal AWS SDK for JavaScript v3 client.
 * - {@link request} makes one raw HTTP call and can stream multi-GB responses.
 * - {@link GrantSigV4Error} is thrown for the filter's own refusals (`GrantMissing`,
 *   `GrantNotFound`, `VaultUnavailable`, ...), never for AWS errors.
 *
 * Only Node.js built-ins are used at run time.
 */

import { createHash } from "node:crypto";
import * as http from "node:http";
import * as net from "node:net";
import { Readable } from "node:stream";

export const GRANT_HEADER = "x-grant-id";
export const REASON_HEADER = "x-grant-reason";
export const CONTEXT_HEADER = "x-grant-context";
export const CONTENT_SHA256_HEADER = "x-amz-content-sha256";
export const DEFAULT_PROXY = "http://127.0.0.1:15080";
/** The secret access key of the placeholder credentials of {@link awsClient}'s SDK clients. */
export const PLACEHOLDER_SECRET = "grant-sigv4-placeholder-not-a-secret";

const ERROR_CODE = /^[A-Z][A-Za-z0-9]{0,63}$/;
// AWS (and moto) answers carry a request id; the filter's local replies never do.
const AWS_RESPONSE_HEADERS = ["x-amzn-requestid", "x-amz-request-id", "x-amz-id-2", "x-amzn-errortype"];
// Local replies are small; never buffer more than this to look at an error body.
const MAX_ERROR_BODY = 64 * 1024;
const EMPTY_SHA256 = createHash("sha256").digest("hex");

type HeaderValue = string | string[] | number | undefined;
export type Headers = Record<string, HeaderValue>;

/**
 * A refusal by the grant-sigv4 filter (or by this client before sending).
 *
 * `code` is the filter's stable error code (`GrantMissing`, `GrantInvalid`, `GrantNotFound`,
 * `VaultUnavailable`, `NotAwsEndpoint`, `PayloadHashRequired`, ...), `status` the HTTP
 * status of the local reply (`undefined` when refused client-side), and `retryable` is true
 * for 503 (`VaultUnavailable`, `VaultBusy`). AWS's own errors are never turned into this error: SDK clients
 * throw their service exceptions and {@link request} returns them as ordinary responses.
 */
export class GrantSigV4Error extends Error {
  readonly code: string;
  readonly status: number | undefined;
  readonly headers: Record<string, string>;

  constructor(code: string, message: string, status?: number, headers?: Record<string, string>) {
    // `message` is the filter's own message; `toString()` adds the status and code.
    super(message);
    this.name = "GrantSigV4Error";
    this.code = code;
    this.status = status;
    this.headers = { ...(headers ?? {}) };
  }

  override toString(): string {
    const where = this.status === undefined ? "" : `${this.status} `;
    return `${this.name}: ${where}${this.code}: ${this.message}`;
  }

  get retryable(): boolean {
    return this.status === 503;
  }
}

function lowerHeaders(headers: Record<string, HeaderValue> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : String(v);
  }
  return out;
}

/** The filter's local reply as an error, or `undefined` for anything else (AWS errors). */
export function parseFilterError(
  status: number,
  headers: Record<string, HeaderValue>,
  body: Uint8Array | string | undefined,
): GrantSigV4Error | undefined {
  if (status < 400 || body === undefined || body.length === 0 || body.length > MAX_ERROR_BODY) {
    return undefined;
  }
  const h = lowerHeaders(headers);
  const ctype = (h["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (ctype !== "application/json") return undefined;
  if (AWS_RESPONSE_HEADERS.some((name) => h[name] !== undefined)) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === "string" ? body : Buffer.from(body).toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return undefined;
  const keys = Object.keys(doc).sort();
  if (keys.length !== 2 || keys[0] !== "error" || keys[1] !== "message") return undefined;
  const { error: code, message } = doc as { error: unknown; message: unknown };
  if (typeof code !== "string" || typeof message !== "string" || !ERROR_CODE.test(code)) {
    return undefined;
  }
  return new GrantSigV4Error(code, message, status, h);
}

function checkHeaderValue(name: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string`);
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) {
      throw new RangeError(`${name} must be printable ASCII (it is sent as the ${name} header)`);
    }
  }
  return value;
}

/** JSON as Python's `json.dumps(..., sort_keys=True, ensure_ascii=True)` writes it compactly. */
function asciiJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === "object" && !(v instanceof Date)) {
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) o[k] = sorted((v as Record<string, unknown>)[k]);
      return o;
    }
    return v;
  };
  return JSON.stringify(sorted(value)).replace(
    /[\u007f-\uffff]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

/**
 * The request headers for a grant: `x-grant-id`, and optionally `x-grant-reason` and
 * `x-grant-context` (the context as compact JSON, keys sorted, non-ASCII as `\u` escapes).
 *
 * A missing or empty grant id is refused here, before anything is sent, with the code the
 * filter itself would answer (`GrantMissing` / `GrantInvalid`). The full grant id rules
 * (1 to 128 of `A-Z a-z 0-9 - _ .`) are left to the filter, which is authoritative.
 */
export function grantHeaders(
  grantId: string | undefined | null,
  reason?: string,
  context?: Record<string, unknown>,
): Record<string, string> {
  if (grantId === undefined || grantId === null) {
    throw new GrantSigV4Error("GrantMissing", "no grant id given: pass the grant id of the AWS credential");
  }
  if (typeof grantId !== "string") throw new TypeError("grantId must be a string");
  if (grantId.trim() === "" || /[^\x21-\x7e]/.test(grantId)) {
    throw new GrantSigV4Error("GrantInvalid", "the grant id is empty or holds spaces or control characters");
  }
  const out: Record<string, string> = { [GRANT_HEADER]: grantId };
  if (reason !== undefined) out[REASON_HEADER] = checkHeaderValue("reason", reason);
  if (context !== undefined) {
    if (context === null || typeof context !== "object" || Array.isArray(context)) {
      throw new TypeError("context must be a plain object");
    }
    out[CONTEXT_HEADER] = asciiJson(context);
  }
  return out;
}

/** A request body: in memory (hashed here), or a stream (hashed by Envoy, or sent unsigned to S3). */
export type Body = string | Uint8Array | Readable | AsyncIterable<Uint8Array> | undefined | null;

function inMemory(body: Body): Uint8Array | undefined {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof Uint8Array) return body;
  return undefined;
}

/**
 * Hex SHA-256 of a request body that is in memory (string as UTF-8, `Buffer`/`Uint8Array`);
 * `undefined` for a stream, whose hash cannot be known without consuming it.
 */
export function bodySha256(body: Body): string | undefined {
  const bytes = inMemory(body);
  if (bytes === undefined) return undefined;
  return bytes.length === 0 ? EMPTY_SHA256 : createHash("sha256").update(bytes).digest("hex");
}

function parseProxy(proxy: string): { host: string; port: number } {
  const u = new URL(proxy);
  if (u.protocol !== "http:") throw new RangeError(`the proxy must be an http:// URL, not ${proxy}`);
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port ? Number(u.port) : 80 };
}

/**
 * An `http.Agent` whose connections all go to the egress Envoy at `proxy`
 * (`http://host:port`), whatever host a request names: the request keeps its `Host`, which
 * Envoy routes and signs by. Give it to any Node.js HTTP client, e.g. an AWS SDK client's
 * `requestHandler: { httpAgent: proxyAgent(...) }` (the SDK has no `HTTP_PROXY` support).
 */
export function proxyAgent(proxy: string = DEFAULT_PROXY, options: http.AgentOptions = {}): http.Agent {
  const target = parseProxy(proxy);
  class EnvoyAgent extends http.Agent {
    // Node's Agent calls createConnection(options, callback); its typings omit it.
    override createConnection(_options: object, callback?: (err: Error | null, socket: net.Socket) => void): net.Socket {
      const socket = net.createConnection({ host: target.host, port: target.port });
      if (callback) {
        socket.once("connect", () => callback(null, socket));
        socket.once("error", (err) => callback(err, socket));
      }
      return socket;
    }
  }
  return new EnvoyAgent({ keepAlive: true, ...options });
}

// ---------------------------------------------------------------------------------------------
// raw HTTP

export interface RequestOptions {
  /** The grant; `undefined` / `""` are refused before sending (`GrantMissing` / `GrantInvalid`). */
  grantId: string;
  headers?: Record<string, string>;
  /** A string (UTF-8), `Buffer`/`Uint8Array`, or a stream / async iterable of chunks. */
  body?: Body;
  /** Audit reason, sent as `x-grant-reason` (printable ASCII). */
  reason?: string;
  /** Audit context, sent as compact JSON in `x-grant-context`. */
  context?: Record<string, unknown>;
  /** The Envoy egress listener (default `http://127.0.0.1:15080`); `null` to send directly. */
  proxy?: string | null;
  /** Idle timeout of the connection, in milliseconds (connect, send and each read). */
  timeout?: number;
  /** Leave the response body unread: iterate the response (or `response.body`) for big objects. */
  stream?: boolean;
}

/** The answer to {@link request}. */
export class Response implements AsyncIterable<Buffer> {
  readonly status: number;
  readonly statusText: string;
  /** Response headers, lowercase names. */
  readonly headers: http.IncomingHttpHeaders;
  /** The body as a stream (already read into memory unless `stream: true`). */
  readonly body: Readable;
  #buffered: Buffer | undefined;

  constructor(raw: http.IncomingMessage, buffered?: Buffer) {
    this.status = raw.statusCode ?? 0;
    this.statusText = raw.statusMessage ?? "";
    this.headers = raw.headers;
    this.#buffered = buffered;
    this.body = buffered === undefined ? raw : Readable.from([buffered]);
  }

  /** One header, joined with ", " when repeated. */
  header(name: string): string | undefined {
    const v = this.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(", ") : v;
  }

  /** The whole body (for streamed responses: reads the rest). */
  async buffer(): Promise<Buffer> {
    if (this.#buffered !== undefined) return this.#buffered;
    const chunks: Buffer[] = [];
    for await (const c of this.body) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
    this.#buffered = Buffer.concat(chunks);
    return this.#buffered;
  }

  async text(): Promise<string> {
    return (await this.buffer()).toString("utf8");
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#buffered !== undefined) {
      yield this.#buffered;
      return;
    }
    for await (const c of this.body) yield Buffer.isBuffer(c) ? c : Buffer.from(c);
  }

  /** Stop reading a streamed body and free its connection. */
  close(): void {
    if (!this.body.destroyed) this.body.destroy();
  }
}

const agents = new Map<string, http.Agent>();

function agentFor(proxy: string | null): http.Agent {
  const key = proxy ?? "";
  let a = agents.get(key);
  if (a === undefined) {
    a = new http.Agent({ keepAlive: true });
    agents.set(key, a);
  }
  return a;
}

async function readAtMost(stream: Readable, limit: number): Promise<{ data: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c);
    chunks.push(b);
    size += b.length;
    if (size > limit) return { data: Buffer.concat(chunks), complete: false };
  }
  return { data: Buffer.concat(chunks), complete: true };
}

/**
 * One raw HTTP request to an AWS endpoint (`http://SERVICE.REGION.amazonaws.com/...`) through
 * the egress proxy, signed by Envoy.
 *
 * `x-amz-content-sha256` is set for bodies in memory (and for a method with a body, when
 * there is none); a stream is sent as it comes (give `content-length` when you know it;
 * without it the body goes chunked). Redirects are not followed and nothing is retried.
 * The filter's refusals throw {@link GrantSigV4Error}; AWS errors are returned as
 * responses (check `status`).
 */
export async function request(method: string, url: string | URL, options: RequestOptions): Promise<Response> {
  const u = new URL(url);
  if (u.protocol !== "http:") {
    throw new RangeError("use an http:// URL: Envoy signs the plain request and originates TLS to AWS");
  }
  const m = method.toUpperCase();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
  Object.assign(headers, grantHeaders(options.grantId, options.reason, options.context));
  const body = options.body ?? undefined;
  const bytes = inMemory(body);
  if ((body !== undefined || !["GET", "HEAD", "DELETE", "OPTIONS"].includes(m)) && !(CONTENT_SHA256_HEADER in headers)) {
    const digest = bodySha256(body);
    if (digest !== undefined) headers[CONTENT_SHA256_HEADER] = digest;
  }
  if (bytes !== undefined && (body !== undefined || !["GET", "HEAD", "DELETE", "OPTIONS"].includes(m))) {
    headers["content-length"] = String(bytes.length);
  }
  headers["host"] = u.host;
  const proxy = options.proxy === undefined ? DEFAULT_PROXY : options.proxy;
  const target = proxy === null ? { host: u.hostname, port: u.port ? Number(u.port) : 80 } : parseProxy(proxy);
  const path = proxy === null ? `${u.pathname}${u.search}` : u.href;

  const raw = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(
      { host: target.host, port: target.port, method: m, path, headers, agent: agentFor(proxy) },
      resolve,
    );
    req.on("error", reject);
    if (options.timeout !== undefined) {
      req.setTimeout(options.timeout, () => {
        req.destroy(Object.assign(new Error(`no answer within ${options.timeout} ms`), { name: "TimeoutError" }));
      });
    }
    if (bytes !== undefined) {
      req.end(bytes.length > 0 ? bytes : undefined);
    } else {
      const src = body instanceof Readable ? body : Readable.from(body as AsyncIterable<Uint8Array>);
      src.on("error", (e) => req.destroy(e));
      src.pipe(req);
    }
  });
  if (options.timeout !== undefined) {
    raw.setTimeout(options.timeout, () => {
      raw.destroy(Object.assign(new Error(`no data within ${options.timeout} ms`), { name: "TimeoutError" }));
    });
  }

  const status = raw.statusCode ?? 0;
  const ctype = String(raw.headers["content-type"] ?? "").toLowerCase();
  if (status >= 400 && ctype.includes("json")) {
    const length = Number(raw.headers["content-length"] ?? NaN);
    if (!options.stream || (Number.isFinite(length) && length <= MAX_ERROR_BODY)) {
      const { data, complete } = await readAtMost(raw, options.stream ? MAX_ERROR_BODY : Infinity);
      const err = complete ? parseFilterError(status, raw.headers, data) : undefined;
      if (err !== undefined) throw err;
      if (complete) return new Response(raw, data);
      // Too long to be the filter's: hand back what was read, then the rest.
      const rest = Readable.from(
        (async function* () {
          yield data;
          for await (const c of raw) yield c as Buffer;
        })(),
      );
      return Object.assign(new Response(raw), { body: rest });
    }
  }
  if (options.stream) return new Response(raw);
  const { data } = await readAtMost(raw, Infinity);
  return new Response(raw, data);
}

// ---------------------------------------------------------------------------------------------
// AWS SDK for JavaScript v3

/** What {@link awsClient} needs of an SDK v3 client (any `@aws-sdk/client-*`). */
export interface SdkClient {
  config: {
    endpointProvider?: (params: any, context?: any) => { url: URL | string };
  };
  middlewareStack: {
    add(middleware: unknown, options: Record<string, unknown>): void;
  };
  destroy(): void;
}

export interface AwsClientOptions {
  grantId: string;
  /** AWS region (default `us-east-1`). */
  region?: string;
  reason?: string;
  context?: Record<string, unknown>;
  /** The Envoy egress listener (default `http://127.0.0.1:15080`); `null` in an Istio mesh. */
  proxy?: string | null;
  /** Use this `http://` endpoint instead of the SDK's own (with the scheme set to http). */
  endpoint?: string;
  /** Request timeout in milliseconds. */
  timeout?: number;
  /**
   * Extra client configuration, merged over the defaults (`maxAttempts`, `forcePathStyle:
   * false` for virtual-hosted S3, ...). `endpoint`, `credentials` and `requestHandler` are set
   * by the helper.
   */
  config?: Record<string, unknown>;
}

interface HttpRequestLike {
  method: string;
  hostname: string;
  path: string;
  headers: Record<string, string>;
  body?: unknown;
}

function isHttpRequest(r: unknown): r is HttpRequestLike {
  return typeof r === "object" && r !== null && "headers" in r && "hostname" in r && "method" in r;
}

/**
 * An AWS SDK for JavaScript v3 client whose requests go, with the grant headers, to
 * `http://<the SDK's own endpoint host>` through the egress proxy, and are signed by Envoy.
 *
 * The SDK signs with placeholder credentials (access key id = the grant id, a fixed dummy
 * secret); the filter drops that signature and signs again with the grant's key. A
 * middleware adds `x-grant-id` (`x-grant-reason`, `x-grant-context`) and sets
 * `x-amz-content-sha256` to the SHA-256 of a body the SDK holds in memory, so Envoy need not
 * buffer it. Checksums are calculated only where an operation requires them (no `aws-chunked`
 * trailers). S3 uses path-style addressing unless `config.forcePathStyle` is false.
 *
 * AWS errors stay the SDK's own service exceptions; the filter's refusals throw
 * {@link GrantSigV4Error}.
 */
export function awsClient<C extends SdkClient>(
  ClientClass: new (config: any) => C,
  options: AwsClientOptions,
): C {
  const headers = grantHeaders(options.grantId, options.reason, options.context);
  const region = options.region ?? "us-east-1";
  const credentials = { accessKeyId: options.grantId, secretAccessKey: PLACEHOLDER_SECRET };
  let endpoint = options.endpoint;
  if (endpoint === undefined) {
    const probe = new ClientClass({ region, credentials });
    try {
      const provider = probe.config.endpointProvider;
      if (typeof provider !== "function") {
        throw new TypeError("this SDK client has no endpointProvider: pass options.endpoint");
      }
      const resolved = new URL(
        String(provider({ Region: region, UseFIPS: false, UseDualStack: false, ForcePathStyle: true }).url),
      );
      endpoint = `http://${resolved.host}${resolved.pathname === "/" ? "" : resolved.pathname}`;
    } finally {
      probe.destroy();
    }
  } else if (!endpoint.startsWith("http://")) {
    throw new RangeError("use an http:// endpoint: Envoy signs the plain request and originates TLS to AWS");
  }
  const proxy = options.proxy === undefined ? DEFAULT_PROXY : options.proxy;
  const requestHandler: Record<string, unknown> = {};
  if (proxy !== null) requestHandler["httpAgent"] = proxyAgent(proxy);
  if (options.timeout !== undefined) requestHandler["requestTimeout"] = options.timeout;
  const client = new ClientClass({
    region,
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...(options.config ?? {}),
    endpoint,
    credentials,
    requestHandler,
  });

  const addHeaders =
    (next: (args: { request: unknown }) => Promise<unknown>) =>
    async (args: { request: unknown }) => {
      const r = args.request;
      if (isHttpRequest(r)) {
        Object.assign(r.headers, headers);
        const present = Object.keys(r.headers).some((k) => k.toLowerCase() === CONTENT_SHA256_HEADER);
        if (!present) {
          const digest = bodySha256(r.body as Body);
          if (digest !== undefined) r.headers[CONTENT_SHA256_HEADER] = digest;
        }
      }
      return next(args);
    };
  client.middlewareStack.add(addHeaders, { step: "build", priority: "low", name: "grantSigV4Headers" });

  const refusals =
    (next: (args: unknown) => Promise<{ response: unknown }>) =>
    async (args: unknown) => {
      const out = await next(args);
      const res = out.response as { statusCode?: number; headers?: Record<string, string>; body?: unknown };
      const status = res?.statusCode ?? 0;
      const ctype = String(res?.headers?.["content-type"] ?? "").toLowerCase();
      if (status >= 400 && ctype.includes("json") && res.body instanceof Readable) {
        const { data, complete } = await readAtMost(res.body, MAX_ERROR_BODY);
        const err = complete ? parseFilterError(status, res.headers ?? {}, data) : undefined;
        if (err !== undefined) throw err;
        const rest = res.body;
        res.body = complete
          ? Readable.from([data])
          : Readable.from(
              (async function* () {
                yield data;
                for await (const c of rest) yield c as Buffer;
              })(),
            );
      }
      return out;
    };
  // Inside the SDK's deserializer: sees the raw response before it becomes an exception.
  client.middlewareStack.add(refusals, { step: "deserialize", priority: "low", name: "grantSigV4Refusals" });
  return client;
}
