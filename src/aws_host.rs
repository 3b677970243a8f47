//! AWS service signing name and region from a request's `:authority`.
//! (Stub: the full implementation replaces this file; the public API below is the contract.)

/// What a host name tells us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsEndpoint {
    /// The SigV4 signing name (`s3`, `dynamodb`, `bedrock` for `bedrock-runtime`, ...).
    pub signing_name: String,
    /// The signing region (`us-east-1` for global endpoints such as IAM).
    pub region: String,
    /// The host to sign and send: lowercase, without a trailing dot, with the port only
    /// when it is not the default for the scheme.
    pub host: String,
}

/// Why a host is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// Not a host name under an AWS partition DNS suffix.
    NotAws(String),
    /// Unparseable authority (empty, userinfo, bad port, bad characters).
    Malformed(String),
}

/// Parse `:authority` (`host[:port]`). `scheme` is `http` or `https` (the default port of
/// which is dropped from [`AwsEndpoint::host`]).
pub fn parse_authority(authority: &str, scheme: &str) -> Result<AwsEndpoint, HostError> {
    let _ = scheme;
    Err(HostError::NotAws(authority.to_string()))
}

/// Whether this signing name follows S3's rules (UNSIGNED-PAYLOAD allowed, no path
/// normalization, single encoding).
pub fn is_s3_family(signing_name: &str) -> bool {
    matches!(signing_name, "s3" | "s3-object-lambda" | "s3-outposts" | "s3express")
}
