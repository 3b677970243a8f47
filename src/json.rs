//! JSON helpers shared by the filter's own records: a writer that gives `serde_json`'s
//! compact output without `Serialize` code (audit records, errors, the shared-data codec),
//! and the reader of a struct's members the way `#[derive(Deserialize)]` reads them.

use serde_json::Value;

/// Writes JSON the way `serde_json` writes it compactly (same escapes, no spaces), so the
/// filter's own records need no `Serialize` code. Objects are written between [`begin`] and
/// [`end`]; each member starts with [`key`] or one of the typed helpers.
///
/// [`begin`]: JsonWriter::begin
/// [`end`]: JsonWriter::end
/// [`key`]: JsonWriter::key
#[derive(Default)]
pub(crate) struct JsonWriter {
    pub(crate) out: String,
    /// No member written yet in the innermost open object or array.
    first: bool,
}

impl JsonWriter {
    pub(crate) fn with_capacity(n: usize) -> Self {
        JsonWriter {
            out: String::with_capacity(n),
            first: false,
        }
    }

    pub(crate) fn begin(&mut self) {
        self.out.push('{');
        self.first = true;
    }

    pub(crate) fn end(&mut self) {
        self.out.push('}');
        self.first = false;
    }

    /// Keys are the filter's own field names (`'static`, never request data), which need no
    /// escape: written as they are.
    pub(crate) fn key(&mut self, k: &'static str) {
        debug_assert!(!k.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
    }

    pub(crate) fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        push_json_str(&mut self.out, v);
    }

    pub(crate) fn opt_str(&mut self, k: &'static str, v: Option<&str>) {
        self.key(k);
        match v {
            Some(v) => push_json_str(&mut self.out, v),
            None => self.out.push_str("null"),
        }
    }

    pub(crate) fn number(&mut self, v: u64) {
        push_u64(&mut self.out, v);
    }

    pub(crate) fn u64(&mut self, k: &'static str, v: u64) {
        self.key(k);
        self.number(v);
    }

    /// `null` or an array of strings.
    pub(crate) fn opt_str_list(&mut self, k: &'static str, v: Option<&[String]>) {
        self.key(k);
        match v {
            None => self.out.push_str("null"),
            Some(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    push_json_str(&mut self.out, item);
                }
                self.out.push(']');
            }
        }
    }
}

/// A JSON string with `serde_json`'s escapes: `\"`, `\\`, `\b \t \n \f \r`, and `\u00xx`
/// for the other control characters; everything else (including non-ASCII) as is.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_json_str_content(out, s);
    out.push('"');
}

/// [`push_json_str`] without the quotes: `s` escaped, for a string written in pieces.
pub(crate) fn push_json_str_content(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Most strings need no escape: skip them 8 bytes at a time.
    let mut clean = 0;
    while let Some(word) = bytes.get(clean..clean + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        if word_needs_escape(u64::from_le_bytes(w)) {
            break;
        }
        clean += 8;
    }
    let mut start = 0;
    for (i, b) in bytes.iter().copied().enumerate().skip(clean) {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or(""));
        start = i + 1;
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(esc);
        }
    }
    out.push_str(s.get(start..).unwrap_or(""));
}

/// Whether one of the 8 bytes of `w` is a control character, `"` or `\` (exact: the
/// "has a byte less than n" word tricks, with bytes of 0x80 and above never matching).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    (below(w, 0x20) | below(quote, 1) | below(backslash, 1)) != 0
}

/// Decimal digits of `v`, without the formatting machinery.
pub(crate) fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(buf.get(i..).unwrap_or(b"")).unwrap_or(""));
}

/// The members of `v` read as a struct with the fields `names`, the way
/// `#[derive(Deserialize)]` reads one from JSON: an object (other members ignored) or an
/// array of exactly one element per field. `None` when `v` is neither. A member that is
/// absent or `null` is `None` (an error for a field that is not an `Option`).
pub(crate) fn json_fields<'a, const N: usize>(
    v: &'a Value,
    names: [&str; N],
) -> Option<[Option<&'a Value>; N]> {
    match v {
        Value::Object(m) => Some(names.map(|n| m.get(n).filter(|x| !x.is_null()))),
        Value::Array(a) if a.len() == N => {
            let mut out = [None; N];
            for (o, x) in out.iter_mut().zip(a) {
                *o = Some(x).filter(|x| !x.is_null());
            }
            Some(out)
        }
        _ => None,
    }
}
