//! AWS Signature Version 4: canonical request, string to sign, signing key, `Authorization`.
//!
//! Pure Rust, no proxy-wasm types, and panic-free on any input: this runs inside Envoy, where a
//! panic kills the Wasm VM. Every malformed input is reported as a [`SigV4Error`].
//!
//! The canonical request follows
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>:
//!
//! ```text
//! METHOD \n CANONICAL_URI \n CANONICAL_QUERY \n CANONICAL_HEADERS \n SIGNED_HEADERS \n PAYLOAD_HASH
//! ```
//!
//! * **URI** — see [`UriRules`]. `Default` normalizes `.`/`..` segments and repeated slashes
//!   and then percent-encodes the (already encoded) path once more, so `%3A` becomes `%253A`
//!   ("double encoding", what AWS does for every service but S3). `S3` takes the path as
//!   received, decodes it and encodes it exactly once, so an already canonical path is unchanged.
//! * **Query** — split on `&` (empty pieces are dropped), each piece split on the first `=`
//!   (a piece without `=` has an empty value and is written `k=`), key and value
//!   percent-decoded and re-encoded with the AWS rules (only `A-Za-z0-9-_.~` kept, everything
//!   else `%XX` uppercase), then sorted by encoded key, then encoded value.
//!   **A raw `+` in the query is a space**: it is decoded as in
//!   `application/x-www-form-urlencoded` and therefore canonicalized as `%20`, while a literal
//!   plus arrives as `%2B` and stays `%2B`. That is what the `aws-sigv4` crate (the Rust SDK's
//!   signer, our test oracle) does — it parses the query with `form_urlencoded::parse` — and it is
//!   how AWS services read query strings; SDKs never send a raw `+` for a plus sign.
//! * **Headers** — names lowercased and sorted, values with leading/trailing spaces removed and
//!   runs of spaces collapsed to one (only the space character, as `aws-sigv4` does; tabs are
//!   kept), repeated names joined with `,` in the order given.
//!
//! A warm signature costs one HMAC of the string to sign: the signing key (four chained HMACs)
//! comes from a [`SigningKeyCache`].

use hmac::digest::generic_array::GenericArray;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt;

/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Payload hash token for requests whose body is not signed (S3).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The SigV4 algorithm name, first line of the string to sign and of `Authorization`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How many signing keys a [`SigningKeyCache`] holds before it is cleared.
pub const SIGNING_KEY_CACHE_CAPACITY: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// How the URI path is canonicalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriRules {
    /// Every service but S3: remove `.`/`..` segments and repeated slashes, then URI-encode
    /// each segment of the (already percent-encoded) path again.
    ///
    /// The path is treated as opaque bytes: every byte but `A-Za-z0-9-_.~` is encoded, `%`
    /// included, so malformed percent escapes are accepted (they are signed exactly as AWS
    /// will see them).
    Default,
    /// S3 family: the path is used as received, percent-encoded once, never normalized.
    ///
    /// The path is percent-decoded and re-encoded byte by byte (`/` kept, an encoded `%2F`
    /// stays `%2F`), so an already canonical path is unchanged, `%7e` becomes `~` and a raw
    /// `!` becomes `%21`. A malformed percent escape is rejected with [`SigV4Error::BadPath`].
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
///
/// No variant ever carries a header value, a key or a signature: errors may be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// The `:path` or query is not valid (bad percent-encoding, not absolute, ...).
    BadPath(&'static str),
    /// A header value cannot be signed (control characters, line breaks).
    ///
    /// Carries the lowercased header name only (never the value). Also used with `:method`
    /// for a method that is not an HTTP token, with the name itself (escaped) for a header name
    /// that is not an HTTP token, with `x-amz-content-sha256` for a payload hash containing
    /// whitespace or control characters, and with `host` for a region or service (derived from
    /// the host) that cannot appear in a credential scope.
    BadHeader(String),
    /// `amz_date` is not `YYYYMMDDTHHMMSSZ`.
    BadDate,
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigV4Error::BadPath(why) => write!(f, "cannot sign request path: {why}"),
            SigV4Error::BadHeader(name) => write!(f, "cannot sign header {name}"),
            SigV4Error::BadDate => f.write_str("x-amz-date is not YYYYMMDDTHHMMSSZ"),
        }
    }
}

impl std::error::Error for SigV4Error {}

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

// ---------------------------------------------------------------------------------------------
// HMAC / hashing helpers
// ---------------------------------------------------------------------------------------------

/// A keyed HMAC-SHA256 whose key is the concatenation of `parts`.
///
/// HMAC pads a key up to the block size (64 bytes) with zeros and first hashes a longer key, so
/// building the padded block here is exactly HMAC and needs neither an allocation (for
/// `"AWS4" + secret`) nor the fallible `new_from_slice`.
fn hmac_with_key(parts: &[&[u8]]) -> HmacSha256 {
    let mut block: GenericArray<
        u8,
        <HmacSha256 as hmac::digest::crypto_common::KeySizeUser>::KeySize,
    > = GenericArray::default();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total > block.len() {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        let digest = h.finalize();
        for (dst, src) in block.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
    } else {
        let mut dst = block.iter_mut();
        for p in parts {
            // `p` first: `zip` must not pull (and lose) a block byte once `p` is exhausted.
            for (s, d) in p.iter().zip(dst.by_ref()) {
                *d = *s;
            }
        }
    }
    <HmacSha256 as KeyInit>::new(&block)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac_with_key(&[key]);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[inline]
fn hex_lower(n: u8) -> char {
    let n = n & 0x0f;
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

#[inline]
fn hex_upper(n: u8) -> char {
    let n = n & 0x0f;
    char::from(if n < 10 { b'0' + n } else { b'A' + n - 10 })
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(hex_lower(b >> 4));
        out.push(hex_lower(b));
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    push_hex(&mut out, &digest);
    out
}

/// Derive the SigV4 signing key for (secret, date `YYYYMMDD`, region, service).
///
/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut mac = hmac_with_key(&[b"AWS4", secret.as_bytes()]);
    mac.update(date.as_bytes());
    let k_date: [u8; 32] = mac.finalize().into_bytes().into();
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

/// (year, month, day) of a count of days since 1970-01-01 (proleptic Gregorian calendar).
///
/// Howard Hinnant's `civil_from_days`. `days` is at most `u64::MAX / 86400`, so nothing here
/// can overflow an `i64`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = if m <= 2 { y + 1 } else { y };
    // d in [1, 31] and m in [1, 12]: the conversions cannot fail.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

fn push_2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + ((n / 10) % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (UTC).
///
/// Years past 9999 (more than ~253 billion seconds) print with more than four digits; such a
/// string is not a valid `x-amz-date` and [`sign`] rejects it with [`SigV4Error::BadDate`].
pub fn format_amz_date(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let secs_of_day = u32::try_from(unix_secs % 86_400).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(16);
    if (0..10_000).contains(&year) {
        let y = u32::try_from(year).unwrap_or(0);
        push_2(&mut out, y / 100);
        push_2(&mut out, y % 100);
    } else {
        out.push_str(&year.to_string());
    }
    push_2(&mut out, month);
    push_2(&mut out, day);
    out.push('T');
    push_2(&mut out, secs_of_day / 3600);
    push_2(&mut out, (secs_of_day / 60) % 60);
    push_2(&mut out, secs_of_day % 60);
    out.push('Z');
    out
}

/// The `YYYYMMDD` part of a valid `YYYYMMDDTHHMMSSZ`.
fn date_of(amz_date: &str) -> Result<&str, SigV4Error> {
    let b = amz_date.as_bytes();
    let ok = b.len() == 16
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 => c == b'T',
            15 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !ok {
        return Err(SigV4Error::BadDate);
    }
    amz_date.get(..8).ok_or(SigV4Error::BadDate)
}

// ---------------------------------------------------------------------------------------------
// Percent-encoding
// ---------------------------------------------------------------------------------------------

/// RFC 3986 unreserved characters, the only ones SigV4 leaves unencoded.
#[inline]
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Append `b`, encoded as `%XX` (uppercase) unless it is unreserved.
#[inline]
fn push_encoded_byte(out: &mut String, b: u8) {
    if is_unreserved(b) {
        out.push(char::from(b));
    } else {
        out.push('%');
        out.push(hex_upper(b >> 4));
        out.push(hex_upper(b));
    }
}

/// Append `bytes` with every byte but the unreserved ones encoded (`%` and `/` included).
fn push_encoded(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        push_encoded_byte(out, b);
    }
}

#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `bytes` and append them re-encoded with the AWS rules, byte by byte.
///
/// `plus_is_space`: decode `+` as a space (query strings). `keep_slash`: a raw `/` is kept
/// (S3 path); an encoded `%2F` always stays encoded.
fn push_reencoded(
    out: &mut String,
    bytes: &[u8],
    plus_is_space: bool,
    keep_slash: bool,
    err: &'static str,
) -> Result<(), SigV4Error> {
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        match b {
            b'%' => {
                let hi = it.next().copied().and_then(hex_val);
                let lo = it.next().copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => push_encoded_byte(out, (hi << 4) | lo),
                    _ => return Err(SigV4Error::BadPath(err)),
                }
            }
            b'+' if plus_is_space => out.push_str("%20"),
            b'/' if keep_slash => out.push('/'),
            _ => push_encoded_byte(out, b),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Canonical URI
// ---------------------------------------------------------------------------------------------

/// Append the canonical URI of `path` (without the query).
fn push_canonical_uri(out: &mut String, path: &str, rules: UriRules) -> Result<(), SigV4Error> {
    if !path.starts_with('/') {
        return Err(SigV4Error::BadPath("path is not absolute"));
    }
    match rules {
        UriRules::S3 => push_reencoded(
            out,
            path.as_bytes(),
            false,
            true,
            "bad percent-encoding in path",
        ),
        UriRules::Default => {
            push_normalized_double_encoded(out, path);
            Ok(())
        }
    }
}

/// Remove `.`/`..` segments and empty segments (RFC 3986 5.2.4 plus slash collapsing, as the
/// AWS SDKs do), and encode each remaining segment once more.
///
/// The result always starts with `/`. It ends with `/` when the path ends with `/`, `/.` or
/// `/..` (the trailing slash is kept), e.g. `/a/b/..` gives `/a/`, `//` gives `/`.
fn push_normalized_double_encoded(out: &mut String, path: &str) {
    let start = out.len();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                // Pop the last written segment. Encoded segments never contain '/', so the
                // last '/' after `start` is where it began.
                if let Some(pos) = out.get(start..).and_then(|s| s.rfind('/')) {
                    out.truncate(start + pos);
                }
            }
            s => {
                out.push('/');
                push_encoded(out, s.as_bytes());
            }
        }
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if out.len() == start || (trailing && !out.ends_with('/')) {
        out.push('/');
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical query
// ---------------------------------------------------------------------------------------------

/// Append the canonical query string of the raw `query` (without the `?`).
fn push_canonical_query(out: &mut String, query: &str) -> Result<(), SigV4Error> {
    if query.is_empty() {
        return Ok(());
    }
    const ERR: &str = "bad percent-encoding in query";
    // All encoded keys and values live in one buffer; `pairs` holds (key start, key end =
    // value start, value end) into it.
    let mut buf = String::with_capacity(query.len() + query.len() / 2);
    let mut pairs: Vec<(usize, usize, usize)> = Vec::with_capacity(8);
    for piece in query.split('&') {
        if piece.is_empty() {
            continue;
        }
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        let k0 = buf.len();
        push_reencoded(&mut buf, key.as_bytes(), true, false, ERR)?;
        let k1 = buf.len();
        push_reencoded(&mut buf, value.as_bytes(), true, false, ERR)?;
        pairs.push((k0, k1, buf.len()));
    }
    let part = |a: usize, b: usize| buf.get(a..b).unwrap_or("");
    pairs.sort_unstable_by(|x, y| {
        part(x.0, x.1)
            .cmp(part(y.0, y.1))
            .then_with(|| part(x.1, x.2).cmp(part(y.1, y.2)))
    });
    for (i, &(k0, k1, v1)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(part(k0, k1));
        out.push('=');
        out.push_str(part(k1, v1));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Canonical headers
// ---------------------------------------------------------------------------------------------

/// RFC 9110 `tchar`.
#[inline]
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Case-insensitive (ASCII) order of header names, i.e. the order of their lowercase forms.
fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Check a header value: valid UTF-8, no control characters but tab (so no CR, LF, NUL, DEL).
fn checked_value<'v>(name: &str, value: &'v [u8]) -> Result<&'v str, SigV4Error> {
    let bad = || SigV4Error::BadHeader(name.to_ascii_lowercase());
    if value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return Err(bad());
    }
    std::str::from_utf8(value).map_err(|_| bad())
}

/// Append `value` with leading/trailing spaces removed and runs of spaces collapsed to one.
fn push_trimmed_value(out: &mut String, value: &str) {
    let mut words = value.split(' ').filter(|w| !w.is_empty());
    if let Some(first) = words.next() {
        out.push_str(first);
        for w in words {
            out.push(' ');
            out.push_str(w);
        }
    }
}

/// Append the canonical headers (each line ending with `\n`) to `out` and the signed header
/// list to `signed`.
fn push_canonical_headers(
    out: &mut String,
    signed: &mut String,
    headers: &[(&str, &[u8])],
) -> Result<(), SigV4Error> {
    // Validate first, so that errors do not depend on the order.
    let mut order: Vec<(&str, &str)> = Vec::with_capacity(headers.len());
    for &(name, value) in headers {
        if !is_token(name) {
            return Err(SigV4Error::BadHeader(name.escape_default().to_string()));
        }
        order.push((name, checked_value(name, value)?));
    }
    // Stable: repeated names keep the order in which they were given.
    order.sort_by(|a, b| cmp_ignore_ascii_case(a.0, b.0));
    let mut prev: Option<&str> = None;
    for &(name, value) in &order {
        let same = prev.is_some_and(|p| p.eq_ignore_ascii_case(name));
        if same {
            out.push(',');
        } else {
            if prev.is_some() {
                out.push('\n');
                signed.push(';');
            }
            for c in name.chars() {
                out.push(c.to_ascii_lowercase());
                signed.push(c.to_ascii_lowercase());
            }
            out.push(':');
        }
        push_trimmed_value(out, value);
        prev = Some(name);
    }
    if prev.is_some() {
        out.push('\n');
    }
    Ok(())
}

/// Region, service and access key id go verbatim into the credential scope and
/// `Authorization`: they must not be able to inject `/`, `,`, spaces or line breaks.
fn is_scope_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// The canonical request of `input` and its signed header list (`host;x-amz-date;...`),
/// without signing (for diagnostics and tests; [`sign`] calls it).
pub fn canonical_request(input: &SigningInput<'_>) -> Result<(String, String), SigV4Error> {
    if !is_token(input.method) {
        return Err(SigV4Error::BadHeader(":method".to_owned()));
    }
    if input.payload_hash.is_empty() || !input.payload_hash.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SigV4Error::BadHeader("x-amz-content-sha256".to_owned()));
    }
    let (path, query) = input
        .path_and_query
        .split_once('?')
        .unwrap_or((input.path_and_query, ""));

    let headers_len: usize = input
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    let mut creq = String::with_capacity(
        input.method.len()
            + path.len() * 3 / 2
            + query.len() * 3 / 2
            + headers_len * 3 / 2
            + input.payload_hash.len()
            + 16,
    );
    let mut signed = String::with_capacity(headers_len / 2 + 16);

    creq.push_str(input.method);
    creq.push('\n');
    push_canonical_uri(&mut creq, path, input.uri_rules)?;
    creq.push('\n');
    push_canonical_query(&mut creq, query)?;
    creq.push('\n');
    push_canonical_headers(&mut creq, &mut signed, input.headers)?;
    creq.push('\n');
    creq.push_str(&signed);
    creq.push('\n');
    creq.push_str(input.payload_hash);
    Ok((creq, signed))
}

/// Sign `input` with an already derived signing key.
pub fn sign(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &[u8; 32],
) -> Result<Signed, SigV4Error> {
    let date = date_of(input.amz_date)?;
    if !is_scope_part(input.region) || !is_scope_part(input.service) {
        return Err(SigV4Error::BadHeader("host".to_owned()));
    }
    if !is_scope_part(access_key_id) {
        return Err(SigV4Error::BadHeader("authorization".to_owned()));
    }
    let (canonical_request, signed_headers) = canonical_request(input)?;

    // <date>/<region>/<service>/aws4_request
    let scope_len = date.len() + input.region.len() + input.service.len() + 15;
    let mut string_to_sign =
        String::with_capacity(ALGORITHM.len() + input.amz_date.len() + scope_len + 64 + 3);
    string_to_sign.push_str(ALGORITHM);
    string_to_sign.push('\n');
    string_to_sign.push_str(input.amz_date);
    string_to_sign.push('\n');
    let scope_start = string_to_sign.len();
    string_to_sign.push_str(date);
    string_to_sign.push('/');
    string_to_sign.push_str(input.region);
    string_to_sign.push('/');
    string_to_sign.push_str(input.service);
    string_to_sign.push_str("/aws4_request");
    let scope_end = string_to_sign.len();
    string_to_sign.push('\n');
    push_hex(
        &mut string_to_sign,
        &Sha256::digest(canonical_request.as_bytes()),
    );

    let mut signature = String::with_capacity(64);
    push_hex(
        &mut signature,
        &hmac_sha256(signing_key, string_to_sign.as_bytes()),
    );

    let scope = string_to_sign.get(scope_start..scope_end).unwrap_or("");
    let mut authorization = String::with_capacity(
        ALGORITHM.len() + access_key_id.len() + scope.len() + signed_headers.len() + 64 + 40,
    );
    authorization.push_str(ALGORITHM);
    authorization.push_str(" Credential=");
    authorization.push_str(access_key_id);
    authorization.push('/');
    authorization.push_str(scope);
    authorization.push_str(", SignedHeaders=");
    authorization.push_str(&signed_headers);
    authorization.push_str(", Signature=");
    authorization.push_str(&signature);

    Ok(Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        authorization,
    })
}

// ---------------------------------------------------------------------------------------------
// Signing key cache
// ---------------------------------------------------------------------------------------------

/// Caches derived signing keys per (secret, date, region, service), so that a warm
/// signature costs one HMAC of the string to sign instead of five.
///
/// At most [`SIGNING_KEY_CACHE_CAPACITY`] entries; when full it is cleared (keys change daily,
/// so the working set is tiny). Entries are keyed by a SHA-256 over the four inputs, never by
/// the secret itself, and `Debug` prints only the entry count.
#[derive(Default)]
pub struct SigningKeyCache {
    entries: Vec<([u8; 32], [u8; 32])>,
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl SigningKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached signing keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forget every cached key.
    pub fn clear(&mut self) {
        for (k, v) in &mut self.entries {
            *k = [0; 32];
            *v = [0; 32];
        }
        self.entries.clear();
    }

    fn fingerprint(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        // Length-prefixed, so that no two different tuples hash the same bytes.
        for part in [secret, date, region, service] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// The signing key for these inputs, derived once and then reused.
    pub fn get(&mut self, secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        let id = Self::fingerprint(secret, date, region, service);
        if let Some((_, key)) = self.entries.iter().find(|(k, _)| *k == id) {
            return *key;
        }
        let key = derive_signing_key(secret, date, region, service);
        if self.entries.len() >= SIGNING_KEY_CACHE_CAPACITY {
            self.clear();
        }
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(8);
        }
        self.entries.push((id, key));
        key
    }
}

impl Drop for SigningKeyCache {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(path: &str, rules: UriRules) -> Result<String, SigV4Error> {
        let mut s = String::new();
        push_canonical_uri(&mut s, path, rules)?;
        Ok(s)
    }

    fn query(q: &str) -> Result<String, SigV4Error> {
        let mut s = String::new();
        push_canonical_query(&mut s, q)?;
        Ok(s)
    }

    #[test]
    fn amz_date_epoch_and_known_instants() {
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        // The test-suite instant.
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(format_amz_date(86_399), "19700101T235959Z");
        assert_eq!(format_amz_date(86_400), "19700102T000000Z");
        assert_eq!(format_amz_date(946_684_799), "19991231T235959Z");
        assert_eq!(format_amz_date(946_684_800), "20000101T000000Z");
        assert_eq!(format_amz_date(2_147_483_647), "20380119T031407Z");
        assert_eq!(format_amz_date(253_402_300_799), "99991231T235959Z");
    }

    #[test]
    fn amz_date_leap_years() {
        // 2000 is a leap year (divisible by 400), 1900/2100 are not, 2024 is.
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(format_amz_date(951_868_800), "20000301T000000Z");
        assert_eq!(format_amz_date(1_709_208_000), "20240229T120000Z");
        assert_eq!(format_amz_date(1_709_251_199), "20240229T235959Z");
        assert_eq!(format_amz_date(1_709_251_200), "20240301T000000Z");
        assert_eq!(format_amz_date(1_677_628_799), "20230228T235959Z");
        assert_eq!(format_amz_date(1_677_628_800), "20230301T000000Z");
        // 2100-02-28T00:00:00Z and the next day is March 1st.
        assert_eq!(format_amz_date(4_107_456_000), "21000228T000000Z");
        assert_eq!(format_amz_date(4_107_542_400), "21000301T000000Z");
        assert_eq!(format_amz_date(1_735_689_599), "20241231T235959Z");
        assert_eq!(format_amz_date(1_735_603_200), "20241231T000000Z");
    }

    #[test]
    fn amz_date_matches_a_day_by_day_walk() {
        // Walk every day from 1970 to 2200 and compare with a naive calendar.
        let mut secs = 0u64;
        for year in 1970u32..2200 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    let want = format!("{year:04}{:02}{d:02}T000000Z", m + 1);
                    assert_eq!(format_amz_date(secs), want);
                    secs += 86_400;
                }
            }
        }
    }

    #[test]
    fn amz_date_huge_does_not_panic() {
        let s = format_amz_date(u64::MAX);
        assert!(s.ends_with('Z'));
        assert_eq!(date_of(&s), Err(SigV4Error::BadDate));
    }

    #[test]
    fn date_validation() {
        assert_eq!(date_of("20150830T123600Z"), Ok("20150830"));
        for bad in [
            "",
            "20150830T123600",
            "20150830T123600z",
            "20150830 123600Z",
            "2015083aT123600Z",
            "20150830T123600ZZ",
            "é0150830T12360Z",
        ] {
            assert_eq!(date_of(bad), Err(SigV4Error::BadDate), "{bad}");
        }
    }

    #[test]
    fn sha256_and_empty() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
        assert_eq!(
            sha256_hex(b"Param1=value1"),
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
    }

    #[test]
    fn signing_key_matches_aws_docs_example() {
        // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
        // (the classic "iam" example).
        let key = derive_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn hmac_long_keys_are_hashed() {
        // A secret longer than the HMAC block goes through the hash-first path.
        let long = "x".repeat(200);
        let via_crate = {
            let mut m =
                <HmacSha256 as KeyInit>::new_from_slice(format!("AWS4{long}").as_bytes()).unwrap();
            m.update(b"20150830");
            let k: [u8; 32] = m.finalize().into_bytes().into();
            k
        };
        let mut mine = hmac_with_key(&[b"AWS4", long.as_bytes()]);
        mine.update(b"20150830");
        let mine: [u8; 32] = mine.finalize().into_bytes().into();
        assert_eq!(mine, via_crate);
        // Exactly 64 bytes of key and 65.
        for n in [60usize, 61] {
            let s = "k".repeat(n);
            let mut a = hmac_with_key(&[b"AWS4", s.as_bytes()]);
            a.update(b"d");
            let mut b =
                <HmacSha256 as KeyInit>::new_from_slice(format!("AWS4{s}").as_bytes()).unwrap();
            b.update(b"d");
            assert_eq!(a.finalize().into_bytes(), b.finalize().into_bytes());
        }
    }

    #[test]
    fn encoding_sets() {
        let mut s = String::new();
        push_encoded(
            &mut s,
            b"-._~AZaz09 !\"#$%&'()*+,/:;<=>?@[\\]^`{|}\x00\x7f\xe1\x88\xb4",
        );
        assert_eq!(
            s,
            "-._~AZaz09%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D%00%7F%E1%88%B4"
        );
    }

    #[test]
    fn default_uri_normalization() {
        let d = |p| uri(p, UriRules::Default).unwrap();
        assert_eq!(d("/"), "/");
        assert_eq!(d("//"), "/");
        assert_eq!(d("///"), "/");
        assert_eq!(d("/./"), "/");
        assert_eq!(d("/."), "/");
        assert_eq!(d("/.."), "/");
        assert_eq!(d("/../.."), "/");
        assert_eq!(d("/../../a"), "/a");
        assert_eq!(d("/example/.."), "/");
        assert_eq!(d("/example1/example2/../.."), "/");
        assert_eq!(d("/a/b/.."), "/a/");
        assert_eq!(d("/a/b/../"), "/a/");
        assert_eq!(d("/a/b/."), "/a/b/");
        assert_eq!(d("/./example"), "/example");
        assert_eq!(d("//example//"), "/example/");
        assert_eq!(d("/a//b"), "/a/b");
        assert_eq!(d("/a/b/"), "/a/b/");
        assert_eq!(d("/a/b"), "/a/b");
        assert_eq!(d("/a/./b/../c/"), "/a/c/");
        assert_eq!(d("/..a/b./.c"), "/..a/b./.c");
        assert_eq!(d("/..."), "/...");
    }

    #[test]
    fn default_uri_double_encodes() {
        let d = |p| uri(p, UriRules::Default).unwrap();
        assert_eq!(d("/a%20b"), "/a%2520b");
        assert_eq!(d("/example space/"), "/example%20space/");
        assert_eq!(d("/\u{1234}"), "/%E1%88%B4");
        assert_eq!(
            d("/test/@connections/JBDvjfGEIAMCERw%3D"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        // Encoded dots are not dot segments; malformed escapes are just bytes.
        assert_eq!(d("/%2E%2E/a"), "/%252E%252E/a");
        assert_eq!(d("/%zz"), "/%25zz");
        assert_eq!(d("/a+b"), "/a%2Bb");
    }

    #[test]
    fn s3_uri_single_encoding() {
        let s = |p| uri(p, UriRules::S3);
        assert_eq!(s("/").unwrap(), "/");
        assert_eq!(s("//example//").unwrap(), "//example//");
        assert_eq!(s("/./a/../b/").unwrap(), "/./a/../b/");
        assert_eq!(s("/a%20b").unwrap(), "/a%20b");
        assert_eq!(s("/a%2Fb").unwrap(), "/a%2Fb");
        assert_eq!(s("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(s("/%7e%41").unwrap(), "/~A");
        assert_eq!(s("/a b!+").unwrap(), "/a%20b%21%2B");
        assert_eq!(s("/\u{1234}").unwrap(), "/%E1%88%B4");
        assert_eq!(s("/%E1%88%B4").unwrap(), "/%E1%88%B4");
        assert!(matches!(s("/%zz"), Err(SigV4Error::BadPath(_))));
        assert!(matches!(s("/%4"), Err(SigV4Error::BadPath(_))));
        assert!(matches!(s("/%"), Err(SigV4Error::BadPath(_))));
    }

    #[test]
    fn path_must_be_absolute() {
        for rules in [UriRules::Default, UriRules::S3] {
            assert!(matches!(uri("", rules), Err(SigV4Error::BadPath(_))));
            assert!(matches!(uri("a/b", rules), Err(SigV4Error::BadPath(_))));
            assert!(matches!(uri("*", rules), Err(SigV4Error::BadPath(_))));
        }
    }

    #[test]
    fn canonical_query_rules() {
        assert_eq!(query("").unwrap(), "");
        assert_eq!(query("b=2&a=1").unwrap(), "a=1&b=2");
        assert_eq!(query("a=2&a=1&a=10").unwrap(), "a=1&a=10&a=2");
        assert_eq!(
            query("Param1=value2&Param1=Value1").unwrap(),
            "Param1=Value1&Param1=value2"
        );
        assert_eq!(query("a&b=").unwrap(), "a=&b=");
        assert_eq!(query("a=&&b").unwrap(), "a=&b=");
        assert_eq!(query("=v").unwrap(), "=v");
        assert_eq!(query("k=a=b").unwrap(), "k=a%3Db");
        assert_eq!(query("k=a+b").unwrap(), "k=a%20b");
        assert_eq!(query("k=a%2Bb").unwrap(), "k=a%2Bb");
        assert_eq!(query("k=a%2bb").unwrap(), "k=a%2Bb");
        assert_eq!(query("k=%7E%41").unwrap(), "k=~A");
        assert_eq!(query("k=/?:@").unwrap(), "k=%2F%3F%3A%40");
        assert_eq!(query("\u{1234}=bar").unwrap(), "%E1%88%B4=bar");
        assert_eq!(
            query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1").unwrap(),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
        // Sorted by encoded key: '%' (0x25) sorts before letters, '-' before '='.
        assert_eq!(query("a-b=1&a=2").unwrap(), "a=2&a-b=1");
        assert!(matches!(query("k=%G0"), Err(SigV4Error::BadPath(_))));
        assert!(matches!(query("k=%"), Err(SigV4Error::BadPath(_))));
    }

    #[test]
    fn trimmed_values() {
        let t = |v: &str| {
            let mut s = String::new();
            push_trimmed_value(&mut s, v);
            s
        };
        assert_eq!(t(""), "");
        assert_eq!(t("   "), "");
        assert_eq!(t(" value1 "), "value1");
        assert_eq!(t("\"a   b   c\""), "\"a b c\"");
        assert_eq!(t("a\t b"), "a\t b");
        assert_eq!(t("\ta\t"), "\ta\t");
    }

    fn input<'a>(headers: &'a [(&'a str, &'a [u8])]) -> SigningInput<'a> {
        SigningInput {
            method: "GET",
            path_and_query: "/",
            headers,
            payload_hash: EMPTY_SHA256,
            amz_date: "20150830T123600Z",
            region: "us-east-1",
            service: "service",
            uri_rules: UriRules::Default,
        }
    }

    #[test]
    fn headers_sorted_joined_and_lowercased() {
        let headers: [(&str, &[u8]); 5] = [
            ("X-Amz-Date", b"20150830T123600Z"),
            ("My-Header1", b"value4"),
            ("Host", b"example.amazonaws.com"),
            ("my-header1", b"  value1  x  "),
            ("MY-HEADER1", b""),
        ];
        let (creq, signed) = canonical_request(&input(&headers)).unwrap();
        assert_eq!(signed, "host;my-header1;x-amz-date");
        assert_eq!(
            creq,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1 x,\n\
                 x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n{EMPTY_SHA256}"
            )
        );
    }

    #[test]
    fn vanilla_signature() {
        let headers: [(&str, &[u8]); 2] = [
            ("Host", b"example.amazonaws.com"),
            ("X-Amz-Date", b"20150830T123600Z"),
        ];
        let key = derive_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        let s = sign(&input(&headers), "AKIDEXAMPLE", &key).unwrap();
        assert_eq!(
            s.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn bad_header_values_are_rejected_without_the_value() {
        for bad in [
            &b"a\r\nInjected: x"[..],
            b"a\nb",
            b"a\rb",
            b"a\0b",
            b"a\x1bb",
            b"a\x7fb",
            b"\xff\xfe",
        ] {
            let headers: [(&str, &[u8]); 2] = [("Host", b"h"), ("X-Secret", bad)];
            let err = canonical_request(&input(&headers)).unwrap_err();
            assert_eq!(err, SigV4Error::BadHeader("x-secret".to_owned()));
            assert!(!format!("{err} {err:?}").contains("Injected"));
        }
        let ok: [(&str, &[u8]); 1] = [("X-Tab", b"a\tb \xe1\x88\xb4")];
        assert!(canonical_request(&input(&ok)).is_ok());
    }

    #[test]
    fn bad_names_method_scope_and_hash() {
        let headers: [(&str, &[u8]); 1] = [("bad name\n", b"v")];
        assert_eq!(
            canonical_request(&input(&headers)).unwrap_err(),
            SigV4Error::BadHeader("bad name\\n".to_owned())
        );
        let headers: [(&str, &[u8]); 1] = [("", b"v")];
        assert!(canonical_request(&input(&headers)).is_err());

        let mut i = input(&[]);
        i.method = "GET /x";
        assert_eq!(
            canonical_request(&i).unwrap_err(),
            SigV4Error::BadHeader(":method".into())
        );
        let mut i = input(&[]);
        i.payload_hash = "abc\n";
        assert!(canonical_request(&i).is_err());
        let key = [0u8; 32];
        let mut i = input(&[]);
        i.region = "us-east-1/x";
        assert!(sign(&i, "AKID", &key).is_err());
        let mut i = input(&[]);
        i.service = "";
        assert!(sign(&i, "AKID", &key).is_err());
        assert!(sign(&input(&[]), "AKID, x", &key).is_err());
        let mut i = input(&[]);
        i.amz_date = "2015-08-30";
        assert_eq!(sign(&i, "AKID", &key).unwrap_err(), SigV4Error::BadDate);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let weird = [
            "",
            "?",
            "/?",
            "/?&&&",
            "/?=",
            "/?%",
            "/?%%",
            "/%",
            "/..%",
            "/\u{ff}..",
            "//..//..",
            "/?a=%e1%88",
            "/ä/../ö?ü=ß",
            "/%%%%%",
            "/?a+b=c+d",
        ];
        for p in weird {
            for rules in [UriRules::Default, UriRules::S3] {
                let mut i = input(&[]);
                i.path_and_query = p;
                i.uri_rules = rules;
                let _ = sign(&i, "AKID", &[0; 32]);
            }
        }
    }

    #[test]
    fn cache_reuses_and_bounds() {
        let mut c = SigningKeyCache::new();
        assert!(c.is_empty());
        let k1 = c.get("secret", "20150830", "us-east-1", "service");
        assert_eq!(
            k1,
            derive_signing_key("secret", "20150830", "us-east-1", "service")
        );
        assert_eq!(c.get("secret", "20150830", "us-east-1", "service"), k1);
        assert_eq!(c.len(), 1);
        // Tuples that concatenate to the same bytes are different entries.
        let k2 = c.get("secret2", "0150830", "us-east-1", "service");
        assert_ne!(k1, k2);
        assert_eq!(c.len(), 2);
        for i in 0..200 {
            let r = format!("r{i}");
            let k = c.get("s", "20150830", &r, "svc");
            assert_eq!(k, derive_signing_key("s", "20150830", &r, "svc"));
            assert!(c.len() <= SIGNING_KEY_CACHE_CAPACITY);
        }
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.starts_with("SigningKeyCache"));
        c.clear();
        assert!(c.is_empty());
    }
}
