//! The canonical request: method, canonical URI, canonical query, canonical headers,
//! signed headers and payload hash.

use super::encoding::*;
use super::error::SigV4Error;
use std::cmp::Ordering;

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
pub(super) fn push_canonical_uri(
    out: &mut String,
    path: &str,
    rules: UriRules,
) -> Result<(), SigV4Error> {
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
pub(super) fn push_normalized_double_encoded(out: &mut String, path: &str) {
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
pub(super) fn cmp_pairs(a: (&str, &str), b: (&str, &str)) -> Ordering {
    a.0.cmp(b.0).then_with(|| a.1.cmp(b.1))
}

/// A name and a value to sort: a header (name, value, whether the name has uppercase letters,
/// whether the value contains a space) or a query pair (key, value, unused flags).
pub(super) type Item<'a> = (&'a str, &'a str, bool, bool);

/// Stable sort ordered by a plain function: headers and query pairs share one instance of the
/// standard sort (each instance adds kilobytes to the module).
pub(super) fn sort_items(items: &mut [Item<'_>], cmp: fn(&Item<'_>, &Item<'_>) -> Ordering) {
    items.sort_by(cmp);
}

/// Append the canonical query string of the raw `query` (without the `?`).
///
/// The pairs are encoded straight into `out`, in one pass over `query`. Queries usually come
/// sorted already (the SDKs sort them); only when a pair sorts before the one written before
/// it, the encoded pairs are moved out, sorted and written back.
pub(super) fn push_canonical_query(out: &mut String, query: &str) -> Result<(), SigV4Error> {
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
pub(super) fn token_has_upper(s: &str) -> Option<bool> {
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
pub fn is_token(s: &str) -> bool {
    token_has_upper(s).is_some()
}

/// Whether one of the 8 bytes of `x` is a control character, a space or DEL (`<= 0x20` or
/// `0x7f`). Exact as a whole (bytes above a flagged one may be flagged wrongly, which does not
/// matter here).
#[inline]
pub(super) fn has_ctl_or_space(x: u64) -> bool {
    let lt_0x21 = x.wrapping_sub(LO * 0x21) & !x & HI;
    let y = x ^ (LO * 0x7f);
    let del = y.wrapping_sub(LO) & !y & HI;
    (lt_0x21 | del) != 0
}

/// The 8-byte words of `bytes` (little-endian) and the remaining bytes.
pub(super) fn words(bytes: &[u8]) -> (impl Iterator<Item = (u64, &[u8])>, &[u8]) {
    let chunks = bytes.chunks_exact(8);
    let rest = chunks.remainder();
    // `chunks_exact(8)`: the conversion cannot fail.
    let words = chunks.map(|c| (u64::from_le_bytes(c.try_into().unwrap_or_default()), c));
    (words, rest)
}

/// Whether every byte is a visible ASCII character (`0x21..=0x7e`).
pub(super) fn is_graphic(bytes: &[u8]) -> bool {
    let (mut words, rest) = words(bytes);
    words.all(|(x, _)| !has_ctl_or_space(x) && x & HI == 0) && rest.iter().all(u8::is_ascii_graphic)
}

/// Case-insensitive (ASCII) order of header names, i.e. the order of their lowercase forms.
pub(super) fn cmp_ignore_ascii_case(a: &str, b: &str) -> Ordering {
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
pub(super) fn checked_value<'v>(
    name: &str,
    value: &'v [u8],
) -> Result<(&'v str, bool), SigV4Error> {
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
pub(super) fn push_trimmed_value(out: &mut String, value: &str) {
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
pub(super) const STACK_HEADERS: usize = 16;

/// Append `name`, lowercased if `upper`.
pub(super) fn push_name(out: &mut String, name: &str, upper: bool) {
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
pub(super) fn push_canonical_headers(
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

/// The canonical request of `input` and where its signed header list is in it.
pub(super) fn build_canonical_request(
    input: &SigningInput<'_>,
) -> Result<(String, std::ops::Range<usize>), SigV4Error> {
    let mut creq = String::new();
    let range = build_canonical_request_into(input, &mut creq)?;
    Ok((creq, range))
}

/// [`build_canonical_request`], appended to `creq` (empty: the range counts from its start).
pub(super) fn build_canonical_request_into(
    input: &SigningInput<'_>,
    creq: &mut String,
) -> Result<std::ops::Range<usize>, SigV4Error> {
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
    creq.reserve(
        input.method.len()
            + path.len() * 3 / 2
            + query.len() * 3 / 2
            + headers_len * 3 / 2
            + input.payload_hash.len()
            + 16,
    );
    creq.push_str(input.method);
    creq.push('\n');
    push_canonical_uri(creq, path, input.uri_rules)?;
    creq.push('\n');
    push_canonical_query(creq, query)?;
    creq.push('\n');
    let signed_start = push_canonical_headers(creq, input.headers)?;
    let signed_end = creq.len();
    creq.push('\n');
    creq.push_str(input.payload_hash);
    Ok(signed_start..signed_end)
}
