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
//! A warm signature costs the SHA-256 of the canonical request and one HMAC of the string to
//! sign, whose key blocks are already absorbed: the [`SigningKey`] (four chained HMACs, then
//! the keyed HMAC state) comes from a [`SigningKeyCache`].

use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Payload hash token for requests whose body is not signed (S3).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The SigV4 algorithm name, first line of the string to sign and of `Authorization`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How many signing keys a [`SigningKeyCache`] holds before it is cleared.
pub const SIGNING_KEY_CACHE_CAPACITY: usize = 64;

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

/// HMAC-SHA256 with its key set: the SHA-256 states after the inner (`key ^ ipad`) and outer
/// (`key ^ opad`) key blocks. Each MAC clones them, so a reused key costs no key-block
/// compressions. Overwritten with the initial SHA-256 state when dropped.
struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl HmacKey {
    /// The HMAC key that is the concatenation of `parts`.
    ///
    /// HMAC pads a key up to the block size (64 bytes) with zeros and first hashes a longer
    /// key, so this is exactly HMAC and needs no allocation (for `"AWS4" + secret`).
    fn new(parts: &[&[u8]]) -> Self {
        let mut block = [0u8; 64];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > block.len() {
            let mut h = Sha256::new();
            for p in parts {
                h.update(p);
            }
            for (dst, src) in block.iter_mut().zip(h.finalize().iter()) {
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
        let mut pad = [0u8; 64];
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x36;
        }
        let mut inner = Sha256::new();
        inner.update(pad);
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x5c;
        }
        let mut outer = Sha256::new();
        outer.update(pad);
        pad = [0; 64];
        block = [0; 64];
        black_box((&mut pad, &mut block));
        HmacKey { inner, outer }
    }

    /// HMAC-SHA256 of `data`.
    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(data);
        self.finish(inner)
    }

    /// The HMAC whose keyed inner hash `inner` has absorbed the whole message.
    fn finish(&self, inner: Sha256) -> [u8; 32] {
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.inner = Sha256::new();
        self.outer = Sha256::new();
        black_box(self);
    }
}

/// A SigV4 signing key, ready to sign with: the 32 key bytes and the keyed HMAC state.
///
/// Cheap to clone (shared). `Debug` never prints the key; the key bytes and the HMAC state
/// are overwritten when the last clone is dropped.
#[derive(Clone)]
pub struct SigningKey(Arc<KeyMaterial>);

struct KeyMaterial {
    bytes: [u8; 32],
    hmac: HmacKey,
    /// The keyed inner hash after the first 64 bytes of the last message signed, with those
    /// bytes. A string to sign starts with the algorithm, the time to the second and the
    /// scope: the requests of one second under one key share that block, so each of them
    /// after the first saves one SHA-256 compression.
    first_block: Mutex<Option<([u8; 64], Sha256)>>,
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes = [0; 32];
        black_box(&mut self.bytes);
        if let Ok(cached) = self.first_block.get_mut() {
            if let Some((_, state)) = cached.as_mut() {
                *state = Sha256::new();
            }
            *cached = None;
        }
    }
}

impl SigningKey {
    /// A signing key from its 32 bytes (as [`derive_signing_key`] returns them).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SigningKey(Arc::new(KeyMaterial {
            bytes: *bytes,
            hmac: HmacKey::new(&[bytes]),
            first_block: Mutex::new(None),
        }))
    }

    /// Derive the signing key for (secret, date `YYYYMMDD`, region, service).
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> Self {
        let mut bytes = derive_signing_key(secret, date, region, service);
        let key = Self::from_bytes(&bytes);
        bytes = [0; 32];
        black_box(&mut bytes);
        key
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0.bytes
    }

    /// HMAC-SHA256 of `data` with this key.
    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let hmac = &self.0.hmac;
        let Some((head, tail)) = data.split_first_chunk::<64>() else {
            return hmac.mac(data);
        };
        let absorb_head = || {
            let mut state = hmac.inner.clone();
            state.update(head);
            state
        };
        let mut inner = match self.0.first_block.lock() {
            Ok(mut cached) => match cached.as_ref() {
                Some((h, state)) if h == head => state.clone(),
                _ => {
                    let state = absorb_head();
                    *cached = Some((*head, state.clone()));
                    state
                }
            },
            Err(_) => absorb_head(),
        };
        inner.update(tail);
        hmac.finish(inner)
    }
}

impl From<[u8; 32]> for SigningKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Lowercase hex of 4 bytes: 8 ASCII digits, computed in one 64-bit word.
#[inline]
fn hex4(b: [u8; 4]) -> [u8; 8] {
    const NIBBLES: u64 = u64::from_le_bytes([0x0f, 0, 0x0f, 0, 0x0f, 0, 0x0f, 0]);
    let x = u64::from(u32::from_le_bytes(b));
    // Byte k of `b` to byte 2k.
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    // High nibble of byte k at byte 2k, low nibble at byte 2k + 1: one nibble per byte.
    let n = ((x >> 4) & NIBBLES) | ((x & NIBBLES) << 8);
    // 0x01 in the bytes holding 10..=15 (no carry: 15 + 6 < 256).
    let letters = ((n + LO * 6) >> 4) & LO;
    (n + LO * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)).to_le_bytes()
}

/// Lowercase hex of a 32-byte digest, appended to `out`.
fn push_hex32(out: &mut String, bytes: &[u8; 32]) {
    let mut hex = [0u8; 64];
    for (digits, b) in hex.chunks_exact_mut(8).zip(bytes.chunks_exact(4)) {
        // `chunks_exact`: the conversions cannot fail.
        if let (Ok(digits), Ok(b)) = (<&mut [u8; 8]>::try_from(digits), <[u8; 4]>::try_from(b)) {
            *digits = hex4(b);
        }
    }
    // Always ASCII.
    out.push_str(std::str::from_utf8(&hex).unwrap_or(""));
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    push_hex32(&mut out, &Sha256::digest(data).into());
    out
}

/// Derive the SigV4 signing key for (secret, date `YYYYMMDD`, region, service).
///
/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = HmacKey::new(&[b"AWS4", secret.as_bytes()]).mac(date.as_bytes());
    for part in [region.as_bytes(), service.as_bytes(), b"aws4_request"] {
        // Each intermediate key is overwritten by the next one.
        key = HmacKey::new(&[&key]).mac(part);
    }
    key
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

/// [`CLASS`] bit: an RFC 3986 unreserved character, the only ones SigV4 leaves unencoded
/// (`A-Za-z0-9-_.~`).
const UNRESERVED: u8 = 1;
/// [`CLASS`] bit: an RFC 9110 `tchar` (header names, methods).
const TCHAR: u8 = 2;
/// [`CLASS`] bit: an ASCII uppercase letter.
const UPPER: u8 = 4;

/// Character classes of every byte.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut class = 0;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            class |= UNRESERVED;
        }
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
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
        {
            class |= TCHAR;
        }
        if c.is_ascii_uppercase() {
            class |= UPPER;
        }
        t[i] = class;
        i += 1;
    }
    t
};

#[inline]
fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

#[inline]
fn is_unreserved(b: u8) -> bool {
    class(b) & UNRESERVED != 0
}

/// Append `%XX` (uppercase).
fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Append `s` with every byte but the unreserved ones encoded (`%` and `/` included).
///
/// Runs of unreserved bytes are copied as they are. A run starts after an encoded byte and
/// stops at the next one, and only holds ASCII bytes: so it is either empty or starts and ends
/// on character boundaries, and `get` cannot fail on a non-empty run.
fn push_encoded(out: &mut String, s: &str) {
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if !is_unreserved(b) {
            out.push_str(s.get(run..i).unwrap_or(""));
            push_pct(out, b);
            run = i + 1;
        }
    }
    out.push_str(s.get(run..).unwrap_or(""));
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

/// How [`push_reencoded`] reads its input.
#[derive(Clone, Copy)]
struct Reencode {
    /// Decode `+` as a space (query strings).
    plus_is_space: bool,
    /// Keep a raw `/` (S3 path); an encoded `%2F` always stays encoded.
    keep_slash: bool,
    /// Stop at a raw `&` (end of a query pair).
    stop_at_amp: bool,
    /// Stop at a raw `=` (end of a query key).
    stop_at_eq: bool,
    err: &'static str,
}

/// Percent-decode `s` from byte `from` and append it re-encoded with the AWS rules, byte by
/// byte, up to the end of `s` or the first stop byte (see [`Reencode`]); returns the index of
/// the stop byte (or the length of `s`).
///
/// Runs of bytes that are kept as they are copied at once, as in [`push_encoded`]. A run
/// starts at `from` (the start of `s` or just after an ASCII stop byte) or after an ASCII or
/// encoded byte.
fn push_reencoded(
    out: &mut String,
    s: &str,
    from: usize,
    how: Reencode,
) -> Result<usize, SigV4Error> {
    let bytes = s.as_bytes();
    let mut run = from;
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        if is_unreserved(b) || (how.keep_slash && b == b'/') {
            i += 1;
            continue;
        }
        out.push_str(s.get(run..i).unwrap_or(""));
        match b {
            b'&' if how.stop_at_amp => return Ok(i),
            b'=' if how.stop_at_eq => return Ok(i),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        let b = (hi << 4) | lo;
                        if is_unreserved(b) {
                            out.push(char::from(b));
                        } else {
                            push_pct(out, b);
                        }
                    }
                    _ => return Err(SigV4Error::BadPath(how.err)),
                }
                i += 3;
            }
            b'+' if how.plus_is_space => {
                out.push_str("%20");
                i += 1;
            }
            _ => {
                push_pct(out, b);
                i += 1;
            }
        }
        run = i;
    }
    out.push_str(s.get(run..).unwrap_or(""));
    Ok(bytes.len())
}

// ---------------------------------------------------------------------------------------------
// Canonical URI
// ---------------------------------------------------------------------------------------------

/// The path (without its query) to forward an S3 request with, when the one received is not
/// already the canonical URI that is signed for it: a lower-case escape (`%2f`), an escaped
/// unreserved byte (`%7E`), a raw byte that needs an escape (`!`, `\\`). Each becomes the
/// other spelling of the same byte, so the request names the same key, and what AWS
/// receives is byte for byte what was signed. `None` when `path` is canonical already (what
/// the AWS SDKs send); a malformed escape is [`SigV4Error::BadPath`].
pub fn s3_forwarded_path(path: &str) -> Result<Option<String>, SigV4Error> {
    let bytes = path.as_bytes();
    let mut i = 0;
    let canonical = loop {
        match bytes.get(i) {
            None => break true,
            Some(&b) if is_unreserved(b) || b == b'/' => i += 1,
            Some(b'%') => {
                let upper = |j: usize| match bytes.get(j) {
                    Some(&h @ (b'0'..=b'9' | b'A'..=b'F')) => hex_val(h),
                    _ => None,
                };
                match (upper(i + 1), upper(i + 2)) {
                    (Some(hi), Some(lo)) if !is_unreserved((hi << 4) | lo) => i += 3,
                    _ => break false,
                }
            }
            Some(_) => break false,
        }
    };
    if canonical {
        return Ok(None);
    }
    let mut out = String::with_capacity(path.len() + 8);
    push_canonical_uri(&mut out, path, UriRules::S3)?;
    Ok(Some(out))
}

/// Append the canonical URI of `path` (without the query).
fn push_canonical_uri(out: &mut String, path: &str, rules: UriRules) -> Result<(), SigV4Error> {
    if !path.starts_with('/') {
        return Err(SigV4Error::BadPath("path is not absolute"));
    }
    match rules {
        UriRules::S3 => {
            let how = Reencode {
                plus_is_space: false,
                keep_slash: true,
                stop_at_amp: false,
                stop_at_eq: false,
                err: "bad percent-encoding in path",
            };
            push_reencoded(out, path, 0, how).map(|_| ())
        }
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
    if path == "/" {
        out.push('/');
        return;
    }
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
                push_encoded(out, s);
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

/// Order of canonical query pairs: by encoded key, then encoded value.
fn cmp_pairs(a: (&str, &str), b: (&str, &str)) -> Ordering {
    a.0.cmp(b.0).then_with(|| a.1.cmp(b.1))
}

/// A name and a value to sort: a header (name, value, whether the name has uppercase letters,
/// whether the value contains a space) or a query pair (key, value, unused flags).
type Item<'a> = (&'a str, &'a str, bool, bool);

/// Stable sort ordered by a plain function: headers and query pairs share one instance of the
/// standard sort (each instance adds kilobytes to the module).
fn sort_items(items: &mut [Item<'_>], cmp: fn(&Item<'_>, &Item<'_>) -> Ordering) {
    items.sort_by(cmp);
}

/// Append the canonical query string of the raw `query` (without the `?`).
///
/// The pairs are encoded straight into `out`, in one pass over `query`. Queries usually come
/// sorted already (the SDKs sort them); only when a pair sorts before the one written before
/// it, the encoded pairs are moved out, sorted and written back.
fn push_canonical_query(out: &mut String, query: &str) -> Result<(), SigV4Error> {
    let key = Reencode {
        plus_is_space: true,
        keep_slash: false,
        stop_at_amp: true,
        stop_at_eq: true,
        err: "bad percent-encoding in query",
    };
    let value = Reencode {
        stop_at_eq: false,
        ..key
    };
    let bytes = query.as_bytes();
    let start = out.len();
    // Start of the previous pair in `out`, and of its value.
    let mut prev: Option<(usize, usize)> = None;
    let mut sorted = true;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'&' {
            // Empty piece.
            i += 1;
            continue;
        }
        if prev.is_some() {
            out.push('&');
        }
        let k0 = out.len();
        i = push_reencoded(out, query, i, key)?;
        let k1 = out.len();
        // A piece without `=` has an empty value; only its first `=` splits it.
        out.push('=');
        if bytes.get(i) == Some(&b'=') {
            i = push_reencoded(out, query, i + 1, value)?;
        }
        if let (true, Some((p0, p1))) = (sorted, prev) {
            let part = |a: usize, b: usize| out.get(a..b).unwrap_or("");
            // The previous pair ends before the `&` at `k0 - 1`.
            let previous = (part(p0, p1), part(p1 + 1, k0.saturating_sub(1)));
            sorted =
                cmp_pairs(previous, (part(k0, k1), part(k1 + 1, out.len()))) != Ordering::Greater;
        }
        prev = Some((k0, k1));
        // Past the `&` (or the end).
        i += 1;
    }
    if !sorted {
        // Encoded keys and values never contain a raw `&` or `=`: split them again.
        let encoded = out.get(start..).unwrap_or("").to_owned();
        out.truncate(start);
        let mut pairs: Vec<Item<'_>> = Vec::new();
        for p in encoded.split('&') {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            pairs.push((k, v, false, false));
        }
        sort_items(&mut pairs, |a, b| cmp_pairs((a.0, a.1), (b.0, b.1)));
        for (i, &(k, v, _, _)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Canonical headers
// ---------------------------------------------------------------------------------------------

/// Whether `s` is an HTTP token, and if so whether it has uppercase letters.
fn token_has_upper(s: &str) -> Option<bool> {
    let mut all = TCHAR;
    let mut any = 0;
    for b in s.bytes() {
        let c = class(b);
        all &= c;
        any |= c;
    }
    (all != 0 && !s.is_empty()).then_some(any & UPPER != 0)
}

/// Whether `s` is an HTTP token (RFC 9110 `tchar`s, not empty): header names, methods.
pub(crate) fn is_token(s: &str) -> bool {
    token_has_upper(s).is_some()
}

/// Bytes 0x01 repeated: SWAR ("SIMD within a register") constants for 8 bytes at a time.
const LO: u64 = u64::from_le_bytes([0x01; 8]);
const HI: u64 = u64::from_le_bytes([0x80; 8]);

/// Whether one of the 8 bytes of `x` is a control character, a space or DEL (`<= 0x20` or
/// `0x7f`). Exact as a whole (bytes above a flagged one may be flagged wrongly, which does not
/// matter here).
#[inline]
fn has_ctl_or_space(x: u64) -> bool {
    let lt_0x21 = x.wrapping_sub(LO * 0x21) & !x & HI;
    let y = x ^ (LO * 0x7f);
    let del = y.wrapping_sub(LO) & !y & HI;
    (lt_0x21 | del) != 0
}

/// The 8-byte words of `bytes` (little-endian) and the remaining bytes.
fn words(bytes: &[u8]) -> (impl Iterator<Item = (u64, &[u8])>, &[u8]) {
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder();
    // `chunks_exact(8)`: the conversion cannot fail.
    let words = chunks.map(|c| (u64::from_le_bytes(c.try_into().unwrap_or_default()), c));
    (words, rest)
}

/// Whether every byte is a visible ASCII character (`0x21..=0x7e`).
fn is_graphic(bytes: &[u8]) -> bool {
    let (mut words, rest) = words(bytes);
    words.all(|(x, _)| !has_ctl_or_space(x) && x & HI == 0) && rest.iter().all(u8::is_ascii_graphic)
}

/// Case-insensitive (ASCII) order of header names, i.e. the order of their lowercase forms.
fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
    for (x, y) in a.bytes().zip(b.bytes()) {
        let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// Check a header value: valid UTF-8, no control characters but tab (so no CR, LF, NUL, DEL).
/// Also tells whether it contains a space (whether it needs trimming).
fn checked_value<'v>(name: &str, value: &'v [u8]) -> Result<(&'v str, bool), SigV4Error> {
    let bad = || SigV4Error::BadHeader(name.to_ascii_lowercase());
    let mut space = false;
    let mut check = |bytes: &[u8]| {
        for &c in bytes {
            if (c < 0x20 && c != b'\t') || c == 0x7f {
                return false;
            }
            space |= c == b' ';
        }
        true
    };
    // Eight bytes at a time, byte by byte only where there is something to look at.
    let (mut words, rest) = words(value);
    if !words.all(|(x, bytes)| !has_ctl_or_space(x) || check(bytes)) || !check(rest) {
        return Err(bad());
    }
    let value = std::str::from_utf8(value).map_err(|_| bad())?;
    Ok((value, space))
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

/// How many headers are sorted on the stack; more are sorted in a `Vec`.
const STACK_HEADERS: usize = 16;

/// Append `name`, lowercased if `upper`.
fn push_name(out: &mut String, name: &str, upper: bool) {
    let at = out.len();
    out.push_str(name);
    if upper {
        if let Some(s) = out.get_mut(at..) {
            s.make_ascii_lowercase();
        }
    }
}

/// Append the canonical headers (each line ending with `\n`), a `\n` and the signed header
/// list to `out`; returns where the signed header list starts.
fn push_canonical_headers(
    out: &mut String,
    headers: &[(&str, &[u8])],
) -> Result<usize, SigV4Error> {
    let mut stack: [Item<'_>; STACK_HEADERS] = [("", "", false, false); STACK_HEADERS];
    let mut heap: Vec<Item<'_>> = Vec::new();
    let order: &mut [Item<'_>] = if headers.len() <= STACK_HEADERS {
        stack.get_mut(..headers.len()).unwrap_or_default()
    } else {
        heap.resize(headers.len(), ("", "", false, false));
        &mut heap
    };
    // Validate first, so that errors do not depend on the order.
    for (slot, &(name, value)) in order.iter_mut().zip(headers) {
        let Some(upper) = token_has_upper(name) else {
            return Err(SigV4Error::BadHeader(name.escape_default().to_string()));
        };
        let (value, space) = checked_value(name, value)?;
        *slot = (name, value, upper, space);
    }
    // Stable: repeated names keep the order in which they were given.
    sort_items(order, |a, b| cmp_ignore_ascii_case(a.0, b.0));
    let mut prev: Option<&str> = None;
    for &(name, value, upper, space) in order.iter() {
        if prev.is_some_and(|p| p.eq_ignore_ascii_case(name)) {
            out.push(',');
        } else {
            if prev.is_some() {
                out.push('\n');
            }
            push_name(out, name, upper);
            out.push(':');
        }
        if space {
            push_trimmed_value(out, value);
        } else {
            out.push_str(value);
        }
        prev = Some(name);
    }
    if prev.is_some() {
        out.push('\n');
    }
    out.push('\n');
    let signed_start = out.len();
    let mut prev: Option<&str> = None;
    for &(name, _, upper, _) in order.iter() {
        match prev {
            Some(p) if p.eq_ignore_ascii_case(name) => continue,
            Some(_) => out.push(';'),
            None => {}
        }
        push_name(out, name, upper);
        prev = Some(name);
    }
    Ok(signed_start)
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

/// The canonical request of `input` and where its signed header list is in it.
fn build_canonical_request(
    input: &SigningInput<'_>,
) -> Result<(String, std::ops::Range<usize>), SigV4Error> {
    if !is_token(input.method) {
        return Err(SigV4Error::BadHeader(":method".to_owned()));
    }
    if input.payload_hash.is_empty() || !is_graphic(input.payload_hash.as_bytes()) {
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
    creq.push_str(input.method);
    creq.push('\n');
    push_canonical_uri(&mut creq, path, input.uri_rules)?;
    creq.push('\n');
    push_canonical_query(&mut creq, query)?;
    creq.push('\n');
    let signed_start = push_canonical_headers(&mut creq, input.headers)?;
    let signed_end = creq.len();
    creq.push('\n');
    creq.push_str(input.payload_hash);
    Ok((creq, signed_start..signed_end))
}

/// The canonical request of `input` and its signed header list (`host;x-amz-date;...`),
/// without signing (for diagnostics and tests; [`sign`] calls it).
pub fn canonical_request(input: &SigningInput<'_>) -> Result<(String, String), SigV4Error> {
    let (creq, signed) = build_canonical_request(input)?;
    let signed = creq.get(signed).unwrap_or("").to_owned();
    Ok((creq, signed))
}

/// Sign `input` with a signing key (from a [`SigningKeyCache`], [`SigningKey::derive`] or
/// [`SigningKey::from_bytes`]).
pub fn sign(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &SigningKey,
) -> Result<Signed, SigV4Error> {
    let date = date_of(input.amz_date)?;
    if !is_scope_part(input.region) || !is_scope_part(input.service) {
        return Err(SigV4Error::BadHeader("host".to_owned()));
    }
    if !is_scope_part(access_key_id) {
        return Err(SigV4Error::BadHeader("authorization".to_owned()));
    }
    let (canonical_request, signed_range) = build_canonical_request(input)?;
    let signed_headers = canonical_request.get(signed_range).unwrap_or("");

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
    push_hex32(
        &mut string_to_sign,
        &Sha256::digest(canonical_request.as_bytes()).into(),
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
    authorization.push_str(signed_headers);
    authorization.push_str(", Signature=");
    let signature_start = authorization.len();
    push_hex32(
        &mut authorization,
        &signing_key.mac(string_to_sign.as_bytes()),
    );
    let signature = authorization
        .get(signature_start..)
        .unwrap_or("")
        .to_owned();
    let signed_headers = signed_headers.to_owned();

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

/// A cached signing key and the inputs it was derived from.
struct CacheEntry {
    /// `date ‖ region ‖ service ‖ secret`, overwritten with zeros when dropped.
    id: Vec<u8>,
    /// Lengths of date, region and service in `id`.
    lens: [usize; 3],
    key: SigningKey,
}

impl CacheEntry {
    fn is_for(&self, secret: &str, date: &str, region: &str, service: &str) -> bool {
        if self.lens != [date.len(), region.len(), service.len()] {
            return false;
        }
        let mut rest = self.id.as_slice();
        for part in [date, region, service, secret] {
            match rest.split_at_checked(part.len()) {
                Some((head, tail)) if head == part.as_bytes() => rest = tail,
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

impl Drop for CacheEntry {
    fn drop(&mut self) {
        self.id.fill(0);
        black_box(&mut self.id);
    }
}

/// Caches signing keys per (secret, date, region, service), so that a warm signature costs
/// one SHA-256 of the canonical request and one HMAC of the string to sign, with the HMAC key
/// blocks already absorbed.
///
/// At most [`SIGNING_KEY_CACHE_CAPACITY`] entries; when full it is cleared (keys change daily,
/// so the working set is tiny). A lookup compares the inputs byte for byte (no hashing): the
/// cache holds a copy of each secret, overwritten with zeros (as are the keys) when an entry is
/// dropped. `Debug` prints only the entry count.
#[derive(Default)]
pub struct SigningKeyCache {
    entries: Vec<CacheEntry>,
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

    /// Forget every cached key (the entries overwrite their secret and key when dropped).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The signing key for these inputs, derived once and then reused.
    pub fn get(&mut self, secret: &str, date: &str, region: &str, service: &str) -> SigningKey {
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.is_for(secret, date, region, service))
        {
            return e.key.clone();
        }
        if self.entries.len() >= SIGNING_KEY_CACHE_CAPACITY {
            self.clear();
        }
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(8);
        }
        // Exactly sized: the secret is never left behind by a reallocation.
        let mut id = Vec::with_capacity(date.len() + region.len() + service.len() + secret.len());
        for part in [date, region, service, secret] {
            id.extend_from_slice(part.as_bytes());
        }
        let key = SigningKey::derive(secret, date, region, service);
        self.entries.push(CacheEntry {
            id,
            lens: [date.len(), region.len(), service.len()],
            key: key.clone(),
        });
        key
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
    fn hex_digits() {
        for b in 0..=255u8 {
            let mut digest = [0u8; 32];
            for (i, d) in digest.iter_mut().enumerate() {
                *d = b.wrapping_add((i as u8).wrapping_mul(37));
            }
            let mut s = String::new();
            push_hex32(&mut s, &digest);
            assert_eq!(s, hex::encode(digest));
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

    /// HMAC-SHA256 by the `hmac` crate, the reference for [`HmacKey`].
    fn reference_hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        use hmac::digest::KeyInit;
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn hmac_long_keys_are_hashed() {
        // A secret longer than the HMAC block goes through the hash-first path.
        let long = "x".repeat(200);
        let mine = HmacKey::new(&[b"AWS4", long.as_bytes()]).mac(b"20150830");
        assert_eq!(
            mine,
            reference_hmac(format!("AWS4{long}").as_bytes(), b"20150830")
        );
        // Exactly 64 bytes of key and 65, and short keys.
        for n in [0usize, 1, 28, 59, 60, 61] {
            let s = "k".repeat(n);
            let a = HmacKey::new(&[b"AWS4", s.as_bytes()]).mac(b"d");
            assert_eq!(
                a,
                reference_hmac(format!("AWS4{s}").as_bytes(), b"d"),
                "{n}"
            );
        }
    }

    #[test]
    fn first_block_state_is_reused_only_for_the_same_first_block() {
        let key = SigningKey::from_bytes(&[0x5a; 32]);
        // Messages that share their first 64 bytes, then one that differs only in byte 63
        // (the cached state must not serve it), then the first again, in an order that
        // replaces the cached block each time.
        let mut a = vec![b'a'; 64];
        a.extend_from_slice(b"tail one");
        let mut a2 = a[..64].to_vec();
        a2.extend_from_slice(
            b"another, longer tail that spans a block boundary: ..................",
        );
        let mut b = a.clone();
        b[63] = b'b';
        for data in [
            &a,
            &a2,
            &b,
            &a,
            &b,
            &a2,
            &a[..64].to_vec(),
            &a[..63].to_vec(),
        ] {
            assert_eq!(key.mac(data), reference_hmac(&[0x5a; 32], data));
        }
    }

    #[test]
    fn hmac_key_is_reusable_for_any_message_length() {
        let key = SigningKey::from_bytes(&[0xab; 32]);
        for n in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 200] {
            let data = vec![b'm'; n];
            assert_eq!(key.mac(&data), reference_hmac(&[0xab; 32], &data), "{n}");
            // The cached state is not consumed.
            assert_eq!(key.mac(&data), reference_hmac(&[0xab; 32], &data), "{n}");
        }
        let k = SigningKey::derive("secret", "20150830", "us-east-1", "service");
        assert_eq!(
            *k.as_bytes(),
            derive_signing_key("secret", "20150830", "us-east-1", "service")
        );
        assert_eq!(format!("{k:?}"), "SigningKey { .. }");
    }

    #[test]
    fn encoding_sets() {
        let mut s = String::new();
        push_encoded(
            &mut s,
            "-._~AZaz09 !\"#$%&'()*+,/:;<=>?@[\\]^`{|}\x00\x7f\u{1234}",
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
    fn s3_forwarded_path_is_the_signed_uri_when_it_differs() {
        let f = |p| s3_forwarded_path(p).unwrap();
        for same in [
            "/",
            "//leading-slash-key",
            "/a//b/./../c",
            "/a%2Fb",
            "/a%20b%21",
            "/~k-_.",
            "/%E1%88%B4",
        ] {
            assert_eq!(f(same), None, "{same}");
            assert_eq!(uri(same, UriRules::S3).unwrap(), same);
        }
        for (sent, forwarded) in [
            ("/a%2fb", "/a%2Fb"),
            ("/%7Ek", "/~k"),
            ("/%41", "/A"),
            ("/a\\b", "/a%5Cb"),
            ("/a!b", "/a%21b"),
            ("/k+", "/k%2B"),
            ("/\u{1234}", "/%E1%88%B4"),
        ] {
            assert_eq!(f(sent).as_deref(), Some(forwarded), "{sent}");
            assert_eq!(uri(sent, UriRules::S3).unwrap(), forwarded);
            assert_eq!(f(forwarded), None, "{forwarded} is canonical");
        }
        assert!(matches!(
            s3_forwarded_path("/%zz"),
            Err(SigV4Error::BadPath(_))
        ));
        assert!(matches!(
            s3_forwarded_path("/%4"),
            Err(SigV4Error::BadPath(_))
        ));
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
    fn word_at_a_time_checks_match_byte_checks() {
        for len in [1usize, 7, 8, 9, 16, 17, 24] {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    let bad = (b < 0x20 && b != b'\t') || b == 0x7f;
                    match checked_value("n", &v) {
                        Ok((_, space)) => {
                            assert!(!bad && b < 0x80, "{len} {pos} {b}");
                            assert_eq!(space, b == b' ', "{len} {pos} {b}");
                        }
                        Err(_) => assert!(bad || b >= 0x80, "{len} {pos} {b}"),
                    }
                    assert_eq!(is_graphic(&v), b.is_ascii_graphic(), "{len} {pos} {b}");
                }
            }
        }
        assert!(is_graphic(EMPTY_SHA256.as_bytes()));
        assert!(checked_value("n", "a\u{e9}  b\tc".as_bytes()).unwrap().1);
    }

    #[test]
    fn token_classes() {
        assert_eq!(token_has_upper("x-amz-date"), Some(false));
        assert_eq!(token_has_upper("X-Amz-Date"), Some(true));
        assert_eq!(token_has_upper("a!#$%&'*+-.^_`|~9"), Some(false));
        for bad in ["", "a b", "a:b", "a\u{e9}", "(a)", "a/b", "a\"b"] {
            assert_eq!(token_has_upper(bad), None, "{bad}");
        }
    }

    #[test]
    fn unsorted_queries_are_sorted_by_key_then_value() {
        assert_eq!(query("b=1&a=2&a=1").unwrap(), "a=1&a=2&b=1");
        assert_eq!(query("a-b=1&a=2").unwrap(), "a=2&a-b=1");
        assert_eq!(query("z&y=&x=%3D&&w").unwrap(), "w=&x=%3D&y=&z=");
        let mut s = String::from("prefix\n");
        push_canonical_query(&mut s, "b=%2f&a=+").unwrap();
        assert_eq!(s, "prefix\na=%20&b=%2F");
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
        let s = sign(&input(&headers), "AKIDEXAMPLE", &key.into()).unwrap();
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
        let key = SigningKey::from_bytes(&[0u8; 32]);
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
                let _ = sign(&i, "AKID", &SigningKey::from_bytes(&[0; 32]));
            }
        }
    }

    #[test]
    fn cache_reuses_and_bounds() {
        let mut c = SigningKeyCache::new();
        assert!(c.is_empty());
        let k1 = *c
            .get("secret", "20150830", "us-east-1", "service")
            .as_bytes();
        assert_eq!(
            k1,
            derive_signing_key("secret", "20150830", "us-east-1", "service")
        );
        assert_eq!(
            *c.get("secret", "20150830", "us-east-1", "service")
                .as_bytes(),
            k1
        );
        assert_eq!(c.len(), 1);
        // Tuples that concatenate to the same bytes are different entries.
        let k2 = *c
            .get("secret2", "0150830", "us-east-1", "service")
            .as_bytes();
        assert_ne!(k1, k2);
        assert_eq!(c.len(), 2);
        let k3 = *c
            .get("secret", "20150830", "us-east-1s", "ervice")
            .as_bytes();
        let k4 = *c
            .get("secret", "20150830", "us-east-", "1service")
            .as_bytes();
        assert_ne!(k3, k1);
        assert_ne!(k4, k1);
        assert_ne!(k3, k4);
        assert_eq!(c.len(), 4);
        assert_eq!(
            *c.get("secret2", "0150830", "us-east-1", "service")
                .as_bytes(),
            k2
        );
        assert_eq!(c.len(), 4);
        for i in 0..200 {
            let r = format!("r{i}");
            let k = c.get("s", "20150830", &r, "svc");
            assert_eq!(
                *k.as_bytes(),
                derive_signing_key("s", "20150830", &r, "svc")
            );
            assert!(c.len() <= SIGNING_KEY_CACHE_CAPACITY);
        }
        // A key handed out outlives the cache being cleared.
        let k = c.get("s", "20150830", "r1", "svc");
        c.clear();
        assert_eq!(
            *k.as_bytes(),
            derive_signing_key("s", "20150830", "r1", "svc")
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.starts_with("SigningKeyCache"));
        c.clear();
        assert!(c.is_empty());
    }
}
