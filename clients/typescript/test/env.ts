// What the end-to-end tests need of the stack started by tests/e2e/test_typescript_client.py:
// the Envoy egress listener and admin address, and a grant stored in the vault.
import * as http from "node:http";

function need(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === "") {
    throw new Error(`${name} is not set: run these tests from tests/e2e/test_typescript_client.py`);
  }
  return v;
}

export const PROXY = need("GRANT_SIGV4_PROXY");
export const ADMIN = need("GRANT_SIGV4_ADMIN");
export const GRANT = need("GRANT_SIGV4_GRANT");
/** The IAM user name of the grant's key in moto. */
export const USER = need("GRANT_SIGV4_USER");

/** Requests Envoy sent to the AWS stand-in so far. */
export async function upstreamRequests(): Promise<number> {
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get(`${ADMIN}/stats?filter=^cluster\\.aws\\.upstream_rq_total$`, (res) => {
        let s = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (s += c));
        res.on("end", () => resolve(s));
      })
      .on("error", reject);
  });
  const m = /cluster\.aws\.upstream_rq_total: (\d+)/.exec(body);
  if (!m) throw new Error(`no upstream_rq_total in ${body}`);
  return Number(m[1]);
}
