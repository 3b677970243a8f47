//! Why a request cannot be signed.

use std::fmt;

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
