//! Encodings of SigV4: percent-encoding with the AWS rules, character classes, lowercase hex.

use super::error::SigV4Error;
use sha2::{Digest, Sha256};

/// Bytes 0x01 repeated: SWAR ("SIMD within a register") constants for 8 bytes at a time.
pub(super) const LO: u64 = u64::from_le_bytes([0x01; 8]);
pub(super) const HI: u64 = u64::from_le_bytes([0x80; 8]);

pub(super) const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Lowercase hex of 4 bytes: 8 ASCII digits, computed in one 64-bit word.
#[inline]
pub(super) fn hex4(b: [u8; 4]) -> [u8; 8] {
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
pub(super) fn push_hex32(out: &mut String, bytes: &[u8; 32]) {
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

/// [`CLASS`] bit: an RFC 3986 unreserved character, the only ones SigV4 leaves unencoded
/// (`A-Za-z0-9-_.~`).
pub(super) const UNRESERVED: u8 = 1;
/// [`CLASS`] bit: an RFC 9110 `tchar` (header names, methods).
pub(super) const TCHAR: u8 = 2;
/// [`CLASS`] bit: an ASCII uppercase letter.
pub(super) const UPPER: u8 = 4;

/// Character classes of every byte.
pub(super) static CLASS: [u8; 256] = {
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
pub(super) fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

#[inline]
pub(super) fn is_unreserved(b: u8) -> bool {
    class(b) & UNRESERVED != 0
}

/// Append `%XX` (uppercase).
pub(super) fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Append `s` with every byte but the unreserved ones encoded (`%` and `/` included).
///
/// Runs of unreserved bytes are copied as they are. A run starts after an encoded byte and
/// stops at the next one, and only holds ASCII bytes: so it is either empty or starts and ends
/// on character boundaries, and `get` cannot fail on a non-empty run.
pub(super) fn push_encoded(out: &mut String, s: &str) {
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
pub(super) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// How [`push_reencoded`] reads its input.
#[derive(Clone, Copy)]
pub(super) struct Reencode {
    /// Decode `+` as a space (query strings).
    pub(super) plus_is_space: bool,
    /// Keep a raw `/` (S3 path); an encoded `%2F` always stays encoded.
    pub(super) keep_slash: bool,
    /// Stop at a raw `&` (end of a query pair).
    pub(super) stop_at_amp: bool,
    /// Stop at a raw `=` (end of a query key).
    pub(super) stop_at_eq: bool,
    pub(super) err: &'static str,
}

/// Percent-decode `s` from byte `from` and append it re-encoded with the AWS rules, byte by
/// byte, up to the end of `s` or the first stop byte (see [`Reencode`]); returns the index of
/// the stop byte (or the length of `s`).
///
/// Runs of bytes that are kept as they are copied at once, as in [`push_encoded`]. A run
/// starts at `from` (the start of `s` or just after an ASCII stop byte) or after an ASCII or
/// encoded byte.
pub(super) fn push_reencoded(
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
