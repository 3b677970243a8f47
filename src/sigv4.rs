//! AWS Signature Version 4: canonical request, string to sign, signing key, `Authorization`.
//! (Stub: the full implementation replaces this file; the public API below is the contract.)

/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Payload hash token for requests whose body is not signed (S3).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// How the URI path is canonicalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriRules {
    /// Every service but S3: remove `.`/`..` segments and repeated slashes, then URI-encode
    /// each segment of the (already percent-encoded) path again.
    Default,
    /// S3 family: the path is used as received, percent-encoded once, never normalized.
    S3,
}

/// What gets signed.
#[derive(Clone, Debug)]
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// `:path` exactly as received (path and optional `?query`).
    pub path_and_query: &'a str,
    /// Headers to sign, names in any case, values as raw bytes. Must already include
    /// `host`, `x-amz-date` and (when used) `x-amz-security-token`, `x-amz-content-sha256`.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Hex SHA-256 of the body, or a token such as `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub uri_rules: UriRules,
}

/// Why a request cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// The `:path` or query is not valid (bad percent-encoding, not absolute, ...).
    BadPath(&'static str),
    /// A header value cannot be signed (control characters, line breaks).
    BadHeader(String),
    /// `amz_date` is not `YYYYMMDDTHHMMSSZ`.
    BadDate,
}

/// The result of signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// `host;x-amz-date;...`
    pub signed_headers: String,
    /// Lowercase hex signature.
    pub signature: String,
    /// The full `Authorization` header value.
    pub authorization: String,
}

/// Derive the SigV4 signing key for (secret, date `YYYYMMDD`, region, service).
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let _ = (secret, date, region, service);
    [0; 32]
}

/// Sign `input` with an already derived signing key.
pub fn sign(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &[u8; 32],
) -> Result<Signed, SigV4Error> {
    let _ = (input, access_key_id, signing_key);
    Err(SigV4Error::BadDate)
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (UTC).
pub fn format_amz_date(unix_secs: u64) -> String {
    let _ = unix_secs;
    String::new()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let _ = data;
    String::new()
}

/// Caches derived signing keys per (secret, date, region, service), so that a warm
/// signature costs one HMAC of the string to sign instead of five.
#[derive(Default)]
pub struct SigningKeyCache {}

impl SigningKeyCache {
    /// The signing key for these inputs, derived once and then reused.
    pub fn get(&mut self, secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        derive_signing_key(secret, date, region, service)
    }
}
