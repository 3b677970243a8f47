//! What to do with one request, decided from its headers alone: the grant it names, the AWS
//! endpoint it goes to, the payload hash to sign, the headers to strip and to sign — or the
//! local error to answer. Then, given the grant's credential, the header edits that sign it.
//!
//! No host types here: the engine hands in the header map and the host applies the edits.

use crate::audit::Decision;
use crate::aws_host::{self, AuthorityMemo, AwsEndpoint, HostError};
use crate::config::{Config, S3Payload};
use crate::errors::{ErrorCode, LocalError};
use crate::policy::{Caller, Policy};
use crate::sigv4::{self, SigningInput, SigningKeyCache, UriRules};
use crate::vault::{self, Credentials};
use std::sync::Arc;

/// Payload hash tokens of S3's `aws-chunked` uploads.
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const STREAMING_SIGNED_PREFIX: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const STREAMING_ECDSA_PREFIX: &str = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD";

/// Client-sent headers that the filter always removes before forwarding: the filter sets its
/// own values where they are needed, and the override headers are for the filter only.
pub const DROPPED_HEADERS: [&str; 8] = [
    "authorization",
    CREDENTIAL_HEADER,
    "x-amz-date",
    "x-amz-security-token",
    SERVICE_OVERRIDE_HEADER,
    REGION_OVERRIDE_HEADER,
    REASON_HEADER,
    CONTEXT_HEADER,
];

/// Optional audit reason of a request (free text, at most 1 KiB).
pub const REASON_HEADER: &str = "x-grant-reason";
/// Optional audit context of a request (a JSON object, at most 4 KiB).
pub const CONTEXT_HEADER: &str = "x-grant-context";
const MAX_REASON_BYTES: usize = 1024;
const MAX_CONTEXT_BYTES: usize = 4096;

/// Request-level override of the signing name (when `request_overrides` is enabled).
pub const SERVICE_OVERRIDE_HEADER: &str = "x-grant-service";
/// Request-level override of the signing region (when `request_overrides` is enabled).
pub const REGION_OVERRIDE_HEADER: &str = "x-grant-region";

/// The credential scope `<grant id>/<date>/<region>/<service>/aws4_request` of a client's
/// placeholder signature, as the precheck instance read it from `Authorization` before the
/// body hasher in front of the signing instance replaced that header (when
/// `grant_from_access_key_id` is on). A client setting it itself gains nothing: it is
/// checked exactly like the `Authorization` it stands for, and always removed.
pub const CREDENTIAL_HEADER: &str = "x-grant-sigv4-credential";

/// Where the grant id of a request came from (for the audit record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantFrom {
    /// The grant header (`x-grant-id`).
    Header,
    /// The access key id of the client's own SigV4 `Authorization`
    /// (`grant_from_access_key_id`).
    AccessKeyId,
}

impl GrantFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantFrom::Header => "header",
            GrantFrom::AccessKeyId => "access_key_id",
        }
    }
}

/// The credential scope of a client's placeholder signature.
struct ClientScope<'a> {
    /// `<grant id>/<date>/<region>/<service>/aws4_request`.
    credential: &'a str,
    grant: &'a str,
    region: &'a str,
    service: &'a str,
}

fn bad_authorization(message: impl Into<String>) -> LocalError {
    LocalError::new(ErrorCode::BadAuthorization, message)
}

/// `<id>/<yyyymmdd>/<region>/<service>/aws4_request`.
fn parse_credential(v: &str) -> Option<ClientScope<'_>> {
    let mut parts = v.split('/');
    let (grant, date, region, service, term) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some()
        || term != "aws4_request"
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || !crate::config::is_signing_name_or_region(region)
        || !crate::config::is_signing_name_or_region(service)
    {
        return None;
    }
    Some(ClientScope {
        credential: v,
        grant,
        region,
        service,
    })
}

const CREDENTIAL_FORM: &str = "Credential=<grant id>/<date>/<region>/<service>/aws4_request";

/// The credential scope of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...`.
fn scope_from_authorization(v: &str) -> Result<ClientScope<'_>, LocalError> {
    let v = v.trim();
    let (scheme, params) = v.split_once([' ', '\t']).unwrap_or((v, ""));
    if scheme != sigv4::ALGORITHM {
        return Err(bad_authorization(format!(
            "the Authorization header is not a SigV4 signature ({}): sign with \
             AWS4-HMAC-SHA256 using the grant id as the access key id, or send the grant id \
             in the grant header",
            if scheme.starts_with("AWS4-ECDSA") {
                "SigV4A"
            } else {
                "another scheme"
            }
        )));
    }
    params
        .split(',')
        .find_map(|p| p.trim().strip_prefix("Credential="))
        .and_then(|c| parse_credential(c.trim()))
        .ok_or_else(|| {
            bad_authorization(format!("the Authorization header has no {CREDENTIAL_FORM}"))
        })
}

/// The grant named by the client's own signature (`grant_from_access_key_id`): from the
/// precheck's hand-off header when present, else from `Authorization`.
fn client_scope<'a>(
    grant_header: &str,
    handoff: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    authorization_count: usize,
) -> Result<ClientScope<'a>, LocalError> {
    if let Some(h) = handoff {
        return std::str::from_utf8(h)
            .ok()
            .and_then(|c| parse_credential(c.trim()))
            .ok_or_else(|| {
                bad_authorization(format!(
                    "{CREDENTIAL_HEADER} must be <grant id>/<date>/<region>/<service>/aws4_request"
                ))
            });
    }
    if authorization_count > 1 {
        return Err(LocalError::new(
            ErrorCode::GrantAmbiguous,
            format!(
                "the request has {authorization_count} Authorization headers: send exactly one"
            ),
        ));
    }
    match authorization {
        None => Err(LocalError::new(
            ErrorCode::GrantMissing,
            format!(
                "the request has no {grant_header} header and no SigV4 Authorization header \
                 ({CREDENTIAL_FORM}): add the grant id of the AWS credential to use, as the \
                 header or as the client's access key id"
            ),
        )),
        Some(a) => scope_from_authorization(header_str("authorization", a)?),
    }
}

/// Query parameters of a presigned URL: a request carrying them already claims a signature.
const PRESIGN_PARAMS: [&str; 6] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-signature",
    "x-amz-signedheaders",
    "x-amz-security-token",
    "x-amz-date",
];

/// Everything needed to sign the request once the credential is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub grant_id: String,
    pub method: String,
    pub path: String,
    /// Shared with the authority memo.
    pub endpoint: Arc<AwsEndpoint>,
    pub uri_rules: UriRules,
    pub payload_hash: String,
    /// The request already carries `x-amz-content-sha256` with exactly `payload_hash` (as
    /// the body hasher sets it), so it is signed as it is and not written again.
    pub payload_hash_as_sent: bool,
    /// The request carries an `x-amz-content-sha256` header (as `payload_hash` or spelled
    /// otherwise), which the signed one replaces.
    pub content_sha256_sent: bool,
    /// Client headers that are signed as they are (lowercase names), `host` first.
    pub signed: Vec<(String, Vec<u8>)>,
    /// Headers to remove before forwarding.
    pub strip: Vec<String>,
    /// New `:authority` when the one received is not the canonical host that is signed.
    pub new_authority: Option<String>,
    /// New `:path` (S3) when the one received is not spelled as the canonical URI that is
    /// signed; `path` is then this one.
    pub new_path: Option<String>,
    /// Audit reason and context (a JSON object) sent by the client.
    pub reason: Option<String>,
    pub context: Option<serde_json::Value>,
    /// Where the grant id came from.
    pub grant_from: GrantFrom,
    /// The client credential scope read from `Authorization` (not from the hand-off header),
    /// for the precheck instance to hand to the signing one.
    pub client_credential: Option<String>,
}

impl Plan {
    /// What only the filter knows of this request, for the filter state: its decision
    /// (`outcome`: `signed` or an error code; `status` of a local reply).
    pub fn decision<'a>(&'a self, outcome: &'a str, status: Option<u32>) -> Decision<'a> {
        Decision {
            grant_id: Some(&self.grant_id),
            grant_from: Some(self.grant_from.as_str()),
            service: Some(&self.endpoint.signing_name),
            region: Some(&self.endpoint.region),
            method: Some(&self.method),
            path: Some(&self.path),
            path_has_query_values: true,
            reason: self.reason.as_deref(),
            context: self.context.as_ref(),
            outcome,
            status,
        }
    }
}

/// Header edits that sign a request: remove `remove`, then set each of `set`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edits {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
    /// Bit `i` set: the request has no `set[i].0` header once `remove` is done, so a host
    /// may add it without looking for one to replace (Envoy's add is cheaper than its
    /// replace, which first removes every value of the name).
    pub added: u32,
}

impl Edits {
    /// Whether `set[i]` names a header the request does not have once `remove` is done.
    pub fn adds(&self, i: usize) -> bool {
        u32::try_from(i)
            .ok()
            .and_then(|i| self.added.checked_shr(i))
            .is_some_and(|bits| bits & 1 == 1)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn query_has_presign_param(path: &str) -> bool {
    let Some((_, query)) = path.split_once('?') else {
        return false;
    };
    query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or("");
        PRESIGN_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
    })
}

/// Only `x-amz-*` headers (other than the ones the filter sets), `content-type` and
/// `content-md5` are signed. Headers that proxies rewrite on the way (user-agent,
/// x-forwarded-*, x-request-id, x-envoy-*, hop-by-hop) are never signed.
fn is_signed_header(name: &str) -> bool {
    match name {
        "content-type" | "content-md5" => true,
        "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256" => false,
        _ => name.starts_with("x-amz-"),
    }
}

fn header_str<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, LocalError> {
    std::str::from_utf8(value).map_err(|_| {
        LocalError::new(
            ErrorCode::BadHeader,
            format!("header {name} is not valid UTF-8"),
        )
    })
}

fn host_error(e: HostError) -> LocalError {
    match e {
        HostError::NotAws(h) => {
            LocalError::not_aws_endpoint(&format!("{} is not an AWS endpoint host name", clip(&h)))
        }
        HostError::Malformed(h) => {
            LocalError::not_aws_endpoint(&format!("the host {} is not usable", clip(&h)))
        }
        HostError::NotSigV4(h) => LocalError::new(
            ErrorCode::NotSigV4,
            format!(
                "{} is an AWS endpoint that is not signed with SigV4 (SigV4A, bearer token or \
                 SigV2), which this filter does not produce",
                clip(&h)
            ),
        ),
        HostError::RegionUnknown(h) => LocalError::new(
            ErrorCode::RegionUnknown,
            format!(
                "the signing region of {} is not in its name: add a host_overrides entry for it",
                clip(&h)
            ),
        ),
    }
}

/// At most 255 characters of a client-sent value, for messages.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(255) {
        Some((i, _)) => s.get(..i).unwrap_or(""),
        None => s,
    }
}

fn override_value<'a>(name: &str, v: Option<&'a [u8]>) -> Result<Option<&'a str>, LocalError> {
    let Some(v) = v else { return Ok(None) };
    match std::str::from_utf8(v) {
        Ok(s) if crate::config::is_signing_name_or_region(s) => Ok(Some(s)),
        _ => Err(LocalError::new(
            ErrorCode::BadOverride,
            format!("{name} must be lowercase letters, digits and '-'"),
        )),
    }
}

/// Signing name, region and signed host: from the operator's `host_overrides`, else from the
/// host name, then (when enabled) from the request's override headers.
fn resolve_endpoint(
    cfg: &Config,
    authorities: &mut AuthorityMemo,
    authority: &str,
    scheme: &str,
    service_override: Option<&[u8]>,
    region_override: Option<&[u8]>,
) -> Result<Arc<AwsEndpoint>, LocalError> {
    let service_override = override_value(SERVICE_OVERRIDE_HEADER, service_override)?;
    let region_override = override_value(REGION_OVERRIDE_HEADER, region_override)?;
    if (service_override.is_some() || region_override.is_some()) && !cfg.request_overrides {
        return Err(LocalError::new(
            ErrorCode::OverrideNotAllowed,
            "x-grant-service / x-grant-region are not enabled (plugin configuration \
             request_overrides)",
        ));
    }
    let mut endpoint = if cfg.host_overrides.is_empty() {
        authorities
            .parse_shared(authority, scheme)
            .map_err(host_error)?
    } else {
        let (lower, host) = aws_host::split_authority(authority, scheme).map_err(host_error)?;
        match cfg.host_overrides.get(&lower) {
            Some(o) => Arc::new(AwsEndpoint {
                signing_name: o.service.clone(),
                region: o.region.clone(),
                host,
            }),
            None => authorities
                .parse_shared(authority, scheme)
                .map_err(host_error)?,
        }
    };
    if let Some(s) = service_override {
        Arc::make_mut(&mut endpoint).signing_name = s.to_string();
    }
    if let Some(r) = region_override {
        Arc::make_mut(&mut endpoint).region = r.to_string();
    }
    Ok(endpoint)
}

/// Decide what to do with a request from its headers. `end_of_stream` is true when the
/// headers end the request (no body follows).
///
/// `headers` as names and values in any owned or borrowed form (the filter passes slices of
/// the one buffer the host returned).
pub fn plan_request<N: AsRef<str>, V: AsRef<[u8]>>(
    cfg: &Config,
    headers: &[(N, V)],
    end_of_stream: bool,
) -> Result<Plan, LocalError> {
    plan(
        cfg,
        &mut AuthorityMemo::new(),
        headers,
        end_of_stream,
        false,
    )
}

/// [`plan_request`] with the plugin instance's memo of resolved authorities.
pub fn plan_request_memoized<N: AsRef<str>, V: AsRef<[u8]>>(
    cfg: &Config,
    authorities: &mut AuthorityMemo,
    headers: &[(N, V)],
    end_of_stream: bool,
) -> Result<Plan, LocalError> {
    plan(cfg, authorities, headers, end_of_stream, false)
}

/// [`plan_request_memoized`], for a host that hashes the body itself before it signs (the
/// native Envoy module) when `host_hashes_body`: a body whose hash is not known at headers
/// time is not refused, the plan's `payload_hash` is left empty, to be filled in once the body
/// is complete. Every other check is made, `max_body_bytes` against `content-length` included
/// (413 before buffering).
pub fn plan_request_hashing_body<N: AsRef<str>, V: AsRef<[u8]>>(
    cfg: &Config,
    authorities: &mut AuthorityMemo,
    headers: &[(N, V)],
    end_of_stream: bool,
    host_hashes_body: bool,
) -> Result<Plan, LocalError> {
    plan(cfg, authorities, headers, end_of_stream, host_hashes_body)
}

/// The checks that can be made before a body is buffered and hashed in front of the signing
/// filter (grant header, host, content length, payload hash tokens), for the `precheck`
/// instance placed before the body hasher: a request that will be refused anyway is refused
/// with its own error before its body is buffered.
///
/// On success, the header to set, if any: when the grant comes from the client's own
/// `Authorization` (`grant_from_access_key_id`), its credential scope is handed to the
/// signing instance in [`CREDENTIAL_HEADER`], since the body hasher between the two replaces
/// `Authorization` with its own.
pub fn precheck_request<N: AsRef<str>, V: AsRef<[u8]>>(
    cfg: &Config,
    headers: &[(N, V)],
    end_of_stream: bool,
) -> Result<Option<(&'static str, String)>, LocalError> {
    precheck_request_memoized(cfg, &mut AuthorityMemo::new(), headers, end_of_stream)
}

/// [`precheck_request`] with the plugin instance's memo of resolved authorities.
pub fn precheck_request_memoized<N: AsRef<str>, V: AsRef<[u8]>>(
    cfg: &Config,
    authorities: &mut AuthorityMemo,
    headers: &[(N, V)],
    end_of_stream: bool,
) -> Result<Option<(&'static str, String)>, LocalError> {
    plan(cfg, authorities, headers, end_of_stream, true)
        .map(|p| p.client_credential.map(|c| (CREDENTIAL_HEADER, c)))
}

fn plan<N: AsRef<str>, V: AsRef<[u8]>>(
    cfg: &Config,
    authorities: &mut AuthorityMemo,
    headers: &[(N, V)],
    end_of_stream: bool,
    hash_comes_later: bool,
) -> Result<Plan, LocalError> {
    let mut method = None;
    let mut path = None;
    let mut authority = None;
    let mut scheme = None;
    let mut grant: Option<&[u8]> = None;
    let mut grant_count = 0usize;
    let mut content_sha = None;
    let mut content_sha_count = 0usize;
    let mut content_length: Option<&[u8]> = None;
    let mut service_override: Option<&[u8]> = None;
    let mut reason: Option<&[u8]> = None;
    let mut context: Option<&[u8]> = None;
    let mut region_override: Option<&[u8]> = None;
    let mut authorization: Option<&[u8]> = None;
    let mut authorization_count = 0usize;
    let mut handoff: Option<&[u8]> = None;
    let mut chunked = false;
    let mut signed: Vec<(String, Vec<u8>)> = Vec::with_capacity(8);

    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        match name {
            ":method" => method = Some(header_str(name, value)?),
            ":path" => path = Some(header_str(name, value)?),
            ":authority" => authority = Some(header_str(name, value)?),
            ":scheme" => scheme = Some(header_str(name, value)?),
            "content-length" => content_length = Some(value),
            "transfer-encoding" => chunked = true,
            SERVICE_OVERRIDE_HEADER => service_override = Some(value),
            REASON_HEADER => reason = Some(value),
            CONTEXT_HEADER => context = Some(value),
            REGION_OVERRIDE_HEADER => region_override = Some(value),
            "authorization" => {
                authorization = Some(value);
                authorization_count += 1;
            }
            CREDENTIAL_HEADER => handoff = Some(value),
            "x-amz-content-sha256" => {
                content_sha = Some(value);
                content_sha_count += 1;
            }
            n if n == cfg.grant_header => {
                grant = Some(value);
                grant_count += 1;
            }
            n if is_signed_header(n) => signed.push((n.to_string(), value.to_vec())),
            _ => {}
        }
    }

    let (grant_id, scope) = match (grant, grant_count) {
        (_, n) if n > 1 => {
            return Err(LocalError::new(
                ErrorCode::GrantAmbiguous,
                format!(
                    "the request has {n} {} headers: send exactly one",
                    cfg.grant_header
                ),
            ))
        }
        (Some(g), _) => (
            vault::validate_grant_id(g)
                .map_err(|e| LocalError::new(ErrorCode::GrantInvalid, e.describe()))?,
            None,
        ),
        (None, _) if cfg.grant_from_access_key_id => {
            let scope = client_scope(
                &cfg.grant_header,
                handoff,
                authorization,
                authorization_count,
            )?;
            let id = vault::validate_grant_id(scope.grant.as_bytes()).map_err(|e| {
                LocalError::new(
                    ErrorCode::GrantInvalid,
                    format!("the access key id, taken as the grant id: {}", e.describe()),
                )
            })?;
            (id, Some(scope))
        }
        (None, _) => return Err(LocalError::grant_missing(&cfg.grant_header)),
    };

    let reason = audit_reason(reason)?;
    let context = audit_context(context)?;
    let method = method
        .ok_or_else(|| LocalError::new(ErrorCode::BadRequest, "the request has no :method"))?;
    if !sigv4::is_token(method) {
        return Err(LocalError::new(
            ErrorCode::BadRequest,
            "the request method is not a valid HTTP token",
        ));
    }
    let path =
        path.ok_or_else(|| LocalError::new(ErrorCode::BadRequest, "the request has no :path"))?;
    if !path.starts_with('/') {
        return Err(LocalError::new(
            ErrorCode::BadRequest,
            "the request path must start with '/' (CONNECT and asterisk-form are not signed)",
        ));
    }
    if query_has_presign_param(path) {
        return Err(LocalError::new(
            ErrorCode::QuerySignatureNotAllowed,
            "the query string already carries SigV4 parameters (X-Amz-Signature, X-Amz-Credential, ...): \
             send the request without them and the filter signs it",
        ));
    }
    let authority = authority
        .ok_or_else(|| LocalError::new(ErrorCode::BadRequest, "the request has no :authority"))?;
    let endpoint = resolve_endpoint(
        cfg,
        authorities,
        authority,
        scheme.unwrap_or("http"),
        service_override,
        region_override,
    )?;
    if let Some(sc) = &scope {
        if sc.service != endpoint.signing_name || sc.region != endpoint.region {
            return Err(LocalError::new(
                ErrorCode::CredentialScopeMismatch,
                format!(
                    "the client signed for service {} in region {}, but {} is service {} in \
                     region {}: configure the client's region (or endpoint) to match",
                    sc.service,
                    sc.region,
                    clip(&endpoint.host),
                    endpoint.signing_name,
                    endpoint.region
                ),
            ));
        }
    }
    let s3 = aws_host::is_s3_family(&endpoint.signing_name);
    let new_path = if s3 { s3_forwarded_path(path)? } else { None };

    let length = match content_length {
        None => None,
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    LocalError::new(ErrorCode::BadRequest, "content-length is not a number")
                })?,
        ),
    };
    let has_body = !end_of_stream && (chunked || length != Some(0));

    if content_sha_count > 1 {
        return Err(LocalError::new(
            ErrorCode::BadContentSha256,
            "the request has more than one x-amz-content-sha256 header",
        ));
    }
    let payload_hash = match content_sha {
        Some(v) => {
            let v = header_str("x-amz-content-sha256", v)?.trim();
            if is_hex64(v) {
                v.to_ascii_lowercase()
            } else if s3 && (v == sigv4::UNSIGNED_PAYLOAD || v == STREAMING_UNSIGNED_TRAILER) {
                v.to_string()
            } else if v.starts_with(STREAMING_SIGNED_PREFIX)
                || v.starts_with(STREAMING_ECDSA_PREFIX)
            {
                return Err(LocalError::new(
                    ErrorCode::ChunkSignedPayloadUnsupported,
                    "per-chunk signed uploads (x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD) \
                     cannot be re-signed by a proxy: send the body with its SHA-256 or as UNSIGNED-PAYLOAD \
                     (boto3, the AWS CLI and the AWS SDK for JavaScript v3 do so for http:// \
                     endpoints; AWS SDK for Java 2.x: S3Configuration chunkedEncodingEnabled(false), \
                     1.x: disableChunkedEncoding())",
                ));
            } else {
                return Err(LocalError::new(
                    ErrorCode::BadContentSha256,
                    "x-amz-content-sha256 must be 64 hex digits (or, for S3, UNSIGNED-PAYLOAD or \
                     STREAMING-UNSIGNED-PAYLOAD-TRAILER)",
                ));
            }
        }
        None if !has_body => sigv4::EMPTY_SHA256.to_string(),
        None if s3 && cfg.s3_payload == S3Payload::Unsigned => sigv4::UNSIGNED_PAYLOAD.to_string(),
        // The body hasher in front of the signing filter will set the hash.
        None if hash_comes_later => String::new(),
        None => return Err(LocalError::payload_hash_required()),
    };
    if !s3 || cfg.s3_payload == S3Payload::Signed {
        if let Some(n) = length.filter(|&n| n > cfg.max_body_bytes) {
            return Err(LocalError::new(
                ErrorCode::BodyTooLarge,
                format!(
                    "the body is {n} bytes, more than max_body_bytes ({})",
                    cfg.max_body_bytes
                ),
            ));
        }
    }

    let payload_hash_as_sent = content_sha == Some(payload_hash.as_bytes());
    let new_authority = (endpoint.host != authority).then(|| endpoint.host.clone());
    signed.insert(0, ("host".to_string(), endpoint.host.as_bytes().to_vec()));

    // Only headers that are there cost a host call to remove.
    let mut strip: Vec<String> = Vec::with_capacity(2);
    for (name, _) in headers {
        let name = name.as_ref();
        if (name == cfg.grant_header || DROPPED_HEADERS.contains(&name))
            && !strip.iter().any(|s| s == name)
        {
            strip.push(name.to_string());
        }
    }

    Ok(Plan {
        grant_id: grant_id.to_string(),
        method: method.to_string(),
        path: new_path.clone().unwrap_or_else(|| path.to_string()),
        new_path,
        uri_rules: if s3 { UriRules::S3 } else { UriRules::Default },
        endpoint,
        payload_hash,
        payload_hash_as_sent,
        content_sha256_sent: content_sha_count > 0,
        signed,
        strip,
        new_authority,
        reason,
        context,
        grant_from: if scope.is_some() {
            GrantFrom::AccessKeyId
        } else {
            GrantFrom::Header
        },
        client_credential: scope
            .filter(|_| handoff.is_none())
            .map(|sc| sc.credential.to_string()),
    })
}

/// S3 reads the path as it is sent, so the path that leaves Envoy is the one that is signed:
/// a path that is not already spelled canonically (`%7e`, `%2f`, a raw `!`) is forwarded as
/// its canonical URI, which names the same key. The query is kept as sent (AWS sorts and
/// re-encodes it, as the signature does).
fn s3_forwarded_path(path_and_query: &str) -> Result<Option<String>, LocalError> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let forwarded = sigv4::s3_forwarded_path(path).map_err(|e| match e {
        sigv4::SigV4Error::BadPath(why) => LocalError::new(
            ErrorCode::BadRequest,
            format!("the path cannot be signed: {why}"),
        ),
        _ => LocalError::new(ErrorCode::BadRequest, "the path cannot be signed"),
    })?;
    Ok(forwarded.map(|mut p| {
        if let Some(q) = query {
            p.push('?');
            p.push_str(q);
        }
        p
    }))
}

fn audit_reason(v: Option<&[u8]>) -> Result<Option<String>, LocalError> {
    let Some(v) = v else { return Ok(None) };
    match std::str::from_utf8(v) {
        Ok(s) if s.len() <= MAX_REASON_BYTES && !s.chars().any(char::is_control) => {
            Ok(Some(s.to_string()))
        }
        _ => Err(LocalError::new(
            ErrorCode::BadAuditReason,
            "x-grant-reason must be at most 1 KiB of UTF-8 text without control characters",
        )),
    }
}

fn audit_context(v: Option<&[u8]>) -> Result<Option<serde_json::Value>, LocalError> {
    let Some(v) = v else { return Ok(None) };
    let bad = || {
        LocalError::new(
            ErrorCode::BadAuditContext,
            "x-grant-context must be a JSON object of at most 4 KiB",
        )
    };
    if v.len() > MAX_CONTEXT_BYTES {
        return Err(bad());
    }
    match serde_json::from_slice::<serde_json::Value>(v) {
        Ok(obj @ serde_json::Value::Object(_)) => Ok(Some(obj)),
        _ => Err(bad()),
    }
}

/// Check a planned request against its grant's policy: 403 `GrantPolicyDenied` naming the
/// rule that refused.
pub fn authorize(plan: &Plan, policy: &Policy, caller: &Caller) -> Result<(), LocalError> {
    policy
        .check(
            &plan.endpoint.signing_name,
            &plan.endpoint.region,
            &plan.method,
            caller,
        )
        .map_err(|d| {
            LocalError::new(
                ErrorCode::GrantPolicyDenied,
                format!("refused by the grant's {} rule: {}", d.rule, d.detail),
            )
        })
}

/// Sign a planned request with `creds` at `now` (seconds since the Unix epoch).
pub fn sign(
    plan: &Plan,
    creds: &Credentials,
    now: u64,
    keys: &mut SigningKeyCache,
) -> Result<Edits, LocalError> {
    let mut edits = Edits::default();
    sign_into(plan, creds, now, keys, &mut edits)?;
    Ok(edits)
}

/// Signed headers held on the stack while signing (more go to the heap).
const SIGNED_ON_STACK: usize = 16;

/// Write `s` into `slot`, reusing its buffer.
fn overwrite(slot: &mut String, s: &str) {
    slot.clear();
    slot.push_str(s);
}

/// Set entry `i` of `set` to `(name, value)`, reusing the buffers of the entry there.
fn put(set: &mut Vec<(String, String)>, i: usize, name: &str, value: &str) {
    match set.get_mut(i) {
        Some((n, v)) => {
            overwrite(n, name);
            overwrite(v, value);
        }
        None => set.push((name.to_string(), value.to_string())),
    }
}

/// [`sign`] into `edits`, whose buffers are reused (an engine keeps one between requests).
/// On error `edits` holds no usable edit.
pub fn sign_into(
    plan: &Plan,
    creds: &Credentials,
    now: u64,
    keys: &mut SigningKeyCache,
    edits: &mut Edits,
) -> Result<(), LocalError> {
    let signed = sign_edits(plan, creds, now, keys, edits);
    if signed.is_err() {
        edits.remove.clear();
        edits.set.clear();
        edits.added = 0;
    }
    signed
}

fn sign_edits(
    plan: &Plan,
    creds: &Credentials,
    now: u64,
    keys: &mut SigningKeyCache,
    edits: &mut Edits,
) -> Result<(), LocalError> {
    // Authorization first, then x-amz-date, written in place.
    while edits.set.len() < 2 {
        edits.set.push((String::new(), String::new()));
    }
    let Some(((auth_name, authorization), rest)) = edits.set.split_first_mut() else {
        return Err(LocalError::internal("no room for the signed headers"));
    };
    let Some((date_name, amz_date)) = rest.first_mut() else {
        return Err(LocalError::internal("no room for the signed headers"));
    };
    overwrite(auth_name, "authorization");
    overwrite(date_name, "x-amz-date");
    amz_date.clear();
    sigv4::push_amz_date(amz_date, now);
    let amz_date = amz_date.as_str();
    let date = amz_date.get(..8).unwrap_or("");
    // On the stack unless the request signs more headers than it holds.
    let count = plan.signed.len() + 3;
    let mut stack: [(&str, &[u8]); SIGNED_ON_STACK] = [("", &[]); SIGNED_ON_STACK];
    let mut heap: Vec<(&str, &[u8])> = Vec::new();
    let signed_headers = plan
        .signed
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .chain([
            ("x-amz-date", amz_date.as_bytes()),
            ("x-amz-content-sha256", plan.payload_hash.as_bytes()),
        ])
        .chain(
            creds
                .session_token
                .iter()
                .map(|t| ("x-amz-security-token", t.as_bytes())),
        );
    let headers: &[(&str, &[u8])] = if count <= SIGNED_ON_STACK {
        let mut len = 0;
        for (slot, h) in stack.iter_mut().zip(signed_headers) {
            *slot = h;
            len += 1;
        }
        stack.get(..len).unwrap_or(&[])
    } else {
        heap.reserve_exact(count);
        heap.extend(signed_headers);
        &heap
    };
    let (key, memo, canonical_memo) = keys.get_with_memo(
        &creds.secret_access_key,
        date,
        &plan.endpoint.region,
        &plan.endpoint.signing_name,
    );
    let input = SigningInput {
        method: &plan.method,
        path_and_query: &plan.path,
        headers,
        payload_hash: &plan.payload_hash,
        amz_date,
        region: &plan.endpoint.region,
        service: &plan.endpoint.signing_name,
        uri_rules: plan.uri_rules,
    };
    sigv4::authorization_memoized(
        &input,
        &creds.access_key_id,
        &key,
        memo,
        Some(canonical_memo),
        authorization,
    )
    .map_err(|e| match e {
        sigv4::SigV4Error::BadPath(why) => LocalError::new(
            ErrorCode::BadRequest,
            format!("the path cannot be signed: {why}"),
        ),
        sigv4::SigV4Error::BadHeader(name) => LocalError::new(
            ErrorCode::BadHeader,
            format!("header {name} has a value that cannot be signed"),
        ),
        sigv4::SigV4Error::BadDate => LocalError::internal("the clock gave an unusable date"),
    })?;

    // `authorization` and `x-amz-date` are among the dropped headers: a client's are in
    // `plan.strip`, so once it is removed the request has none.
    let mut added = 0b11;
    let mut n = 2;
    if !plan.payload_hash_as_sent {
        put(
            &mut edits.set,
            n,
            "x-amz-content-sha256",
            &plan.payload_hash,
        );
        if !plan.content_sha256_sent {
            added |= 1 << n;
        }
        n += 1;
    }
    if let Some(t) = &creds.session_token {
        // Dropped too.
        put(&mut edits.set, n, "x-amz-security-token", t);
        added |= 1 << n;
        n += 1;
    }
    if let Some(a) = &plan.new_authority {
        put(&mut edits.set, n, ":authority", a);
        n += 1;
    }
    if let Some(p) = &plan.new_path {
        put(&mut edits.set, n, ":path", p);
        n += 1;
    }
    edits.set.truncate(n);
    edits.added = added;
    for (i, name) in plan.strip.iter().enumerate() {
        match edits.remove.get_mut(i) {
            Some(slot) => overwrite(slot, name),
            None => edits.remove.push(name.clone()),
        }
    }
    edits.remove.truncate(plan.strip.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(br#"{"vault": {"token": "t"}, "max_body_bytes": 1000}"#).unwrap()
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn base(extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        let mut h = vec![
            (":method", "GET"),
            (":path", "/"),
            (":authority", "sts.us-east-1.amazonaws.com"),
            (":scheme", "http"),
            ("x-grant-id", "g1"),
            ("user-agent", "boto3"),
        ];
        h.extend_from_slice(extra);
        hdrs(&h)
    }

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE00000000".into(),
            secret_access_key: "secret/key+value".into(),
            session_token: None,
        }
    }

    #[test]
    fn plain_get_is_planned_with_empty_hash() {
        let p = plan_request(&cfg(), &base(&[]), true).unwrap();
        assert_eq!(p.grant_id, "g1");
        assert_eq!(p.endpoint.signing_name, "sts");
        assert_eq!(p.endpoint.region, "us-east-1");
        assert_eq!(p.payload_hash, sigv4::EMPTY_SHA256);
        assert_eq!(p.uri_rules, UriRules::Default);
        assert_eq!(p.signed[0].0, "host");
        assert!(p.signed.iter().all(|(n, _)| n != "user-agent"));
        assert!(p.strip.contains(&"x-grant-id".to_string()));
        assert_eq!(p.new_authority, None);
    }

    #[test]
    fn failures_map_to_codes() {
        let c = cfg();
        let code = |h: Vec<(String, Vec<u8>)>, eos| plan_request(&c, &h, eos).unwrap_err();
        let no_grant = hdrs(&[
            (":method", "GET"),
            (":path", "/"),
            (":authority", "sts.us-east-1.amazonaws.com"),
        ]);
        assert_eq!(code(no_grant, true).code, ErrorCode::GrantMissing);
        assert_eq!(
            code(base(&[("x-grant-id", "g2")]), true).code,
            ErrorCode::GrantAmbiguous
        );
        let mut bad = base(&[]);
        bad[4].1 = b"../x".to_vec();
        assert_eq!(code(bad, true).code, ErrorCode::GrantInvalid);
        let mut host = base(&[]);
        host[2].1 = b"example.com".to_vec();
        let e = code(host, true);
        assert_eq!((e.status(), e.code), (403, ErrorCode::NotAwsEndpoint));
        assert_eq!(
            code(base(&[("content-length", "5")]), false).code,
            ErrorCode::PayloadHashRequired
        );
        assert_eq!(
            code(
                base(&[
                    ("content-length", "5000"),
                    ("x-amz-content-sha256", &"a".repeat(64))
                ]),
                false
            )
            .status(),
            413
        );
        assert_eq!(
            code(base(&[("x-amz-content-sha256", "nope")]), false).code,
            ErrorCode::BadContentSha256
        );
        let mut presigned = base(&[]);
        presigned[1].1 = b"/?X-Amz-Signature=abc".to_vec();
        assert_eq!(
            code(presigned, true).code,
            ErrorCode::QuerySignatureNotAllowed
        );
    }

    #[test]
    fn precheck_lets_unhashed_bodies_pass_but_refuses_the_rest() {
        let c = cfg();
        assert!(precheck_request(&c, &base(&[("content-length", "5")]), false).is_ok());
        assert_eq!(
            precheck_request(&c, &base(&[("content-length", "5000")]), false)
                .unwrap_err()
                .status(),
            413
        );
        let no_grant = hdrs(&[
            (":method", "POST"),
            (":path", "/"),
            (":authority", "sts.us-east-1.amazonaws.com"),
        ]);
        assert_eq!(
            precheck_request(&c, &no_grant, false).unwrap_err().code,
            ErrorCode::GrantMissing
        );
    }

    #[test]
    fn a_host_that_hashes_bodies_gets_an_empty_hash_to_fill_in() {
        let c = cfg();
        let plan = |h: &[(&str, &str)], eos: bool, host_hashes: bool| {
            plan_request_hashing_body(&c, &mut AuthorityMemo::new(), &base(h), eos, host_hashes)
        };
        let p = plan(&[("content-length", "5")], false, true).unwrap();
        assert_eq!(p.payload_hash, "");
        assert!(!p.payload_hash_as_sent);
        // A host that does not hash bodies refuses it.
        let e = plan(&[("content-length", "5")], false, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadHashRequired);
        // A known hash, an empty body and an S3 body are planned as before.
        let h = "ab".repeat(32);
        let p = plan(
            &[("content-length", "5"), ("x-amz-content-sha256", &h)],
            false,
            true,
        )
        .unwrap();
        assert_eq!(p.payload_hash, h);
        let p = plan(&[], true, true).unwrap();
        assert_eq!(p.payload_hash, sigv4::EMPTY_SHA256);
        // content-length over max_body_bytes is refused before any buffering.
        let e = plan(&[("content-length", "5000")], false, true).unwrap_err();
        assert_eq!(e.code, ErrorCode::BodyTooLarge);
    }

    #[test]
    fn host_overrides_and_request_overrides() {
        let c = Config::parse(
            br#"{"vault": {"token": "t"},
            "host_overrides": {"api.example.com": {"service": "execute-api", "region": "eu-west-1"}}}"#,
        )
        .unwrap();
        let mut h = base(&[]);
        h[2].1 = b"API.example.com:8443".to_vec();
        let p = plan_request(&c, &h, true).unwrap();
        assert_eq!(p.endpoint.signing_name, "execute-api");
        assert_eq!(p.endpoint.region, "eu-west-1");
        assert_eq!(p.endpoint.host, "api.example.com:8443");
        // other hosts still parse as AWS, and non-AWS hosts are still refused
        assert_eq!(
            plan_request(&c, &base(&[]), true)
                .unwrap()
                .endpoint
                .signing_name,
            "sts"
        );
        h[2].1 = b"other.example.com".to_vec();
        assert_eq!(
            plan_request(&c, &h, true).unwrap_err().code,
            ErrorCode::NotAwsEndpoint
        );
        // request-level overrides are off by default
        let e = plan_request(&c, &base(&[("x-grant-region", "eu-west-1")]), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::OverrideNotAllowed);
        let on = Config::parse(br#"{"vault": {"token": "t"}, "request_overrides": true}"#).unwrap();
        let p = plan_request(
            &on,
            &base(&[("x-grant-region", "eu-west-1"), ("x-grant-service", "sts")]),
            true,
        )
        .unwrap();
        assert_eq!(
            (p.endpoint.signing_name.as_str(), p.endpoint.region.as_str()),
            ("sts", "eu-west-1")
        );
        assert!(p.strip.iter().any(|s| s == "x-grant-region"));
        assert!(p.signed.iter().all(|(n, _)| !n.starts_with("x-grant")));
        let e = plan_request(&on, &base(&[("x-grant-region", "EU WEST")]), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadOverride);
        // overrides never make a non-AWS host signable
        let mut h = base(&[("x-grant-region", "us-east-1")]);
        h[2].1 = b"evil.example".to_vec();
        assert_eq!(
            plan_request(&on, &h, true).unwrap_err().code,
            ErrorCode::NotAwsEndpoint
        );
    }

    #[test]
    fn audit_headers_are_checked_and_stripped() {
        let p = plan_request(
            &cfg(),
            &base(&[
                ("x-grant-reason", "nightly export"),
                ("x-grant-context", r#"{ "job": 7 }"#),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(p.reason.as_deref(), Some("nightly export"));
        assert_eq!(p.context, Some(serde_json::json!({"job": 7})));
        assert!(p.strip.iter().any(|h| h == "x-grant-reason"));
        assert!(p.strip.iter().any(|h| h == "x-grant-context"));
        assert!(p.signed.iter().all(|(n, _)| !n.starts_with("x-grant")));
        for bad in [
            "[1]",
            "{",
            "\"x\"",
            &format!("{{\"a\":\"{}\"}}", "x".repeat(5000)),
        ] {
            let e = plan_request(&cfg(), &base(&[("x-grant-context", bad)]), true).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadAuditContext, "{bad}");
        }
        let e = plan_request(&cfg(), &base(&[("x-grant-reason", "a\u{7}b")]), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadAuditReason);
    }

    #[test]
    fn policy_denials_name_the_rule() {
        let p = plan_request(&cfg(), &base(&[]), true).unwrap();
        let policy = Policy {
            services: Some(vec!["s3".into()]),
            ..Policy::default()
        };
        let e = authorize(&p, &policy, &Caller::default()).unwrap_err();
        assert_eq!((e.status(), e.code), (403, ErrorCode::GrantPolicyDenied));
        assert!(e.message.contains("allowed_services"), "{}", e.message);
        assert!(authorize(&p, &Policy::default(), &Caller::default()).is_ok());
    }

    #[test]
    fn sigv4a_and_unknown_region_hosts_are_explained() {
        let mut h = base(&[]);
        h[2].1 = b"mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com".to_vec();
        assert_eq!(
            plan_request(&cfg(), &h, true).unwrap_err().code,
            ErrorCode::NotSigV4
        );
        h[2].1 = b"bucket.s3-accelerate.amazonaws.com".to_vec();
        assert_eq!(
            plan_request(&cfg(), &h, true).unwrap_err().code,
            ErrorCode::RegionUnknown
        );
    }

    #[test]
    fn client_hash_is_used_when_well_formed() {
        let h = "AB".repeat(32);
        let p = plan_request(
            &cfg(),
            &base(&[("content-length", "5"), ("x-amz-content-sha256", &h)]),
            false,
        )
        .unwrap();
        assert_eq!(p.payload_hash, h.to_ascii_lowercase());
    }

    #[test]
    fn s3_bodies_stream_unsigned() {
        let mut h = base(&[("content-length", "5000000")]);
        h[2].1 = b"s3.us-east-1.amazonaws.com".to_vec();
        h[0].1 = b"PUT".to_vec();
        let p = plan_request(&cfg(), &h, false).unwrap();
        assert_eq!(p.payload_hash, sigv4::UNSIGNED_PAYLOAD);
        assert_eq!(p.uri_rules, UriRules::S3);
        h.push((
            "x-amz-content-sha256".into(),
            b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_vec(),
        ));
        assert_eq!(
            plan_request(&cfg(), &h, false).unwrap_err().code,
            ErrorCode::ChunkSignedPayloadUnsupported
        );
    }

    #[test]
    fn an_s3_path_leaves_spelled_as_it_is_signed() {
        let s3 = |path: &str| {
            let mut h = base(&[]);
            h[1].1 = path.as_bytes().to_vec();
            h[2].1 = b"bkt.s3.us-east-1.amazonaws.com".to_vec();
            h
        };
        let mut keys = SigningKeyCache::default();
        for (sent, forwarded) in [
            ("/a%2fb?x=%7e&y", Some("/a%2Fb?x=%7e&y")),
            ("/%7Ek", Some("/~k")),
            ("/a\\b", Some("/a%5Cb")),
            ("//leading-slash-key", None),
            ("/a/../b//c?list-type=2", None),
        ] {
            let p = plan_request(&cfg(), &s3(sent), true).unwrap();
            assert_eq!(p.new_path.as_deref(), forwarded, "{sent}");
            assert_eq!(p.path, forwarded.unwrap_or(sent));
            let e = sign(&p, &creds(), 1_440_938_160, &mut keys).unwrap();
            let set: Vec<_> = e.set.iter().filter(|(n, _)| n == ":path").collect();
            assert_eq!(set.len(), usize::from(forwarded.is_some()));
        }
        assert_eq!(
            plan_request(&cfg(), &s3("/%zz"), true).unwrap_err().code,
            ErrorCode::BadRequest
        );
        // Other services read the path by the SigV4 rules (normalized, encoded again): it is
        // forwarded as sent.
        let mut h = base(&[]);
        h[1].1 = b"/a/%7e/../?Action=X".to_vec();
        assert_eq!(plan_request(&cfg(), &h, true).unwrap().new_path, None);
    }

    /// The names of `e.set` that a host may add, and those it must replace.
    fn added_and_replaced(e: &Edits) -> (Vec<&str>, Vec<&str>) {
        let names = |added: bool| {
            e.set
                .iter()
                .enumerate()
                .filter(|(i, _)| e.adds(*i) == added)
                .map(|(_, (n, _))| n.as_str())
                .collect()
        };
        (names(true), names(false))
    }

    #[test]
    fn headers_the_request_lacks_once_stripped_are_added_the_others_replaced() {
        let mut keys = SigningKeyCache::default();
        let token = Credentials {
            session_token: Some("token".into()),
            ..creds()
        };
        // A plain GET has none of the headers the signature sets.
        let p = plan_request(&cfg(), &base(&[]), true).unwrap();
        let e = sign(&p, &token, 1_440_938_160, &mut keys).unwrap();
        assert_eq!(
            added_and_replaced(&e),
            (
                vec![
                    "authorization",
                    "x-amz-date",
                    "x-amz-content-sha256",
                    "x-amz-security-token"
                ],
                vec![]
            )
        );
        // The client's own authorization, date and token are stripped first, so the
        // signature's are still added; its x-amz-content-sha256, spelled otherwise than the
        // hash that is signed, stays until it is replaced.
        let upper = sigv4::EMPTY_SHA256.to_ascii_uppercase();
        let h = base(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=x"),
            ("x-amz-date", "20150830T000000Z"),
            ("x-amz-security-token", "client"),
            ("x-amz-content-sha256", &upper),
        ]);
        let p = plan_request(&cfg(), &h, true).unwrap();
        let e = sign(&p, &token, 1_440_938_160, &mut keys).unwrap();
        for n in ["authorization", "x-amz-date", "x-amz-security-token"] {
            assert!(e.remove.iter().any(|r| r == n), "{n} is not stripped");
        }
        assert_eq!(
            added_and_replaced(&e),
            (
                vec!["authorization", "x-amz-date", "x-amz-security-token"],
                vec!["x-amz-content-sha256"]
            )
        );
        // A new :authority replaces the one received.
        let mut h = base(&[]);
        h[2].1 = b"STS.amazonaws.com".to_vec();
        let p = plan_request(&cfg(), &h, true).unwrap();
        let e = sign(&p, &creds(), 1_440_938_160, &mut keys).unwrap();
        assert!(added_and_replaced(&e).1.contains(&":authority"), "{e:?}");
        assert!(!e.adds(64) && !e.adds(usize::MAX));
    }

    #[test]
    fn sign_sets_the_headers_and_never_leaks_the_secret() {
        let p = plan_request(&cfg(), &base(&[("x-amz-target", "X.Y")]), true).unwrap();
        let mut keys = SigningKeyCache::default();
        let e = sign(&p, &creds(), 1_440_938_160, &mut keys).unwrap();
        let auth = &e.set.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000000/20150830/us-east-1/sts/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-target, Signature="
        ), "{auth}");
        assert!(e
            .set
            .iter()
            .any(|(n, v)| n == "x-amz-date" && v == "20150830T123600Z"));
        assert!(!format!("{e:?}").contains("secret/key"));
        // Only headers present are removed; authorization is replaced by its set.
        assert_eq!(e.remove, vec!["x-grant-id".to_string()]);
        let p = plan_request(
            &cfg(),
            &base(&[
                ("authorization", "AWS4-HMAC-SHA256 forged"),
                ("x-amz-security-token", "t"),
            ]),
            true,
        )
        .unwrap();
        let e = sign(&p, &creds(), 1_440_938_160, &mut keys).unwrap();
        assert!(e.remove.contains(&"x-amz-security-token".to_string()));
        // The second signature reused the signing key of the first.
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn payload_hash_header_is_written_only_when_it_changes() {
        let mut keys = SigningKeyCache::default();
        let now = 1_440_938_160;
        let names = |e: &Edits| e.set.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let signed_headers = |e: &Edits| {
            let auth = &e.set[0].1;
            let start = auth.find("SignedHeaders=").unwrap() + "SignedHeaders=".len();
            auth[start..auth.find(", Signature").unwrap()].to_string()
        };
        // No header: added, with the hash the signature used (S3 requires it, and a
        // verifier then needs no idea of the body of a GET with a query).
        let p = plan_request(&cfg(), &base(&[]), true).unwrap();
        assert!(!p.payload_hash_as_sent);
        let e = sign(&p, &creds(), now, &mut keys).unwrap();
        assert_eq!(
            names(&e),
            ["authorization", "x-amz-date", "x-amz-content-sha256"]
        );
        assert_eq!(e.set[2].1, sigv4::EMPTY_SHA256);
        assert_eq!(signed_headers(&e), "host;x-amz-content-sha256;x-amz-date");
        // Sent exactly as it is signed (as the body hasher sets it): not written again.
        let h = "a".repeat(64);
        let p = plan_request(&cfg(), &base(&[("x-amz-content-sha256", &h)]), true).unwrap();
        assert!(p.payload_hash_as_sent);
        let e = sign(&p, &creds(), now, &mut keys).unwrap();
        assert_eq!(names(&e), ["authorization", "x-amz-date"]);
        assert_eq!(signed_headers(&e), "host;x-amz-content-sha256;x-amz-date");
        // Sent in another form (upper case, spaces): written as signed.
        let p = plan_request(
            &cfg(),
            &base(&[("x-amz-content-sha256", &format!(" {} ", "A".repeat(64)))]),
            true,
        )
        .unwrap();
        assert!(!p.payload_hash_as_sent);
        let e = sign(&p, &creds(), now, &mut keys).unwrap();
        assert_eq!(
            names(&e),
            ["authorization", "x-amz-date", "x-amz-content-sha256"]
        );
        assert_eq!(e.set[2].1, h);
    }

    #[test]
    fn session_token_is_signed_and_sent() {
        let p = plan_request(&cfg(), &base(&[]), true).unwrap();
        let mut c = creds();
        c.session_token = Some("TOKEN123".into());
        let e = sign(&p, &c, 1_440_938_160, &mut SigningKeyCache::default()).unwrap();
        assert!(e
            .set
            .iter()
            .any(|(n, v)| n == "x-amz-security-token" && v == "TOKEN123"));
        let auth = &e.set[0].1;
        assert!(auth.contains("x-amz-date;x-amz-security-token"), "{auth}");
    }

    fn from_key() -> Config {
        Config::parse(br#"{"vault": {"token": "t"}, "grant_from_access_key_id": true}"#).unwrap()
    }

    /// A request as an unmodified SDK sends it with the grant id as its access key id.
    fn sdk(credential: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, \
             Signature=0123abcd"
        );
        let mut h = vec![
            (":method", "GET"),
            (":path", "/?Action=GetCallerIdentity&Version=2011-06-15"),
            (":authority", "sts.us-east-1.amazonaws.com"),
            (":scheme", "http"),
            ("x-amz-date", "20260101T000000Z"),
            ("x-amz-security-token", "placeholder"),
            ("authorization", auth.as_str()),
        ];
        h.extend_from_slice(extra);
        hdrs(&h)
    }

    #[test]
    fn grant_from_the_access_key_id() {
        let c = from_key();
        let h = sdk("team-a.prod/20260101/us-east-1/sts/aws4_request", &[]);
        let p = plan_request(&c, &h, true).unwrap();
        assert_eq!(p.grant_id, "team-a.prod");
        assert_eq!(p.grant_from, GrantFrom::AccessKeyId);
        assert_eq!(
            p.client_credential.as_deref(),
            Some("team-a.prod/20260101/us-east-1/sts/aws4_request")
        );
        for dropped in ["authorization", "x-amz-date", "x-amz-security-token"] {
            assert!(p.strip.iter().any(|s| s == dropped), "{dropped}");
            assert!(p.signed.iter().all(|(n, _)| n != dropped));
        }
        // Signed again with the grant's key: the placeholder signature is gone.
        let e = sign(&p, &creds(), 1_767_225_600, &mut SigningKeyCache::default()).unwrap();
        let auth = &e.set[0].1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE00000000/20260101/"));
        assert!(!auth.contains("0123abcd"));
        let d = p.decision("signed", None).to_json();
        assert!(d.contains(r#""grant_from":"access_key_id""#), "{d}");
        // The precheck hands the scope on to the signing instance (the body hasher between
        // them replaces Authorization); the signing instance takes it from there.
        let (name, value) = precheck_request(&c, &h, true).unwrap().unwrap();
        assert_eq!(name, CREDENTIAL_HEADER);
        let mut after: Vec<(String, Vec<u8>)> = h
            .iter()
            .filter(|(n, _)| n != "authorization")
            .cloned()
            .collect();
        after.push((
            "authorization".into(),
            b"AWS4-HMAC-SHA256 Credential=BODYHASHONLYDUMMY/20260101/us-east-1/body-hash-only/aws4_request, SignedHeaders=host, Signature=00".to_vec(),
        ));
        after.push((name.to_string(), value.into_bytes()));
        let q = plan_request(&c, &after, true).unwrap();
        assert_eq!(
            (q.grant_id.as_str(), q.grant_from),
            ("team-a.prod", GrantFrom::AccessKeyId)
        );
        assert_eq!(q.client_credential, None);
        assert!(q.strip.iter().any(|s| s == CREDENTIAL_HEADER));
        // Without the hand-off, the hasher's own credential is refused by its scope.
        let mut lost = after.clone();
        lost.pop();
        let e = plan_request(&c, &lost, true).unwrap_err();
        assert_eq!(e.code, ErrorCode::CredentialScopeMismatch);
    }

    #[test]
    fn the_grant_header_wins_over_the_access_key_id() {
        let h = sdk(
            "other/20260101/us-east-1/sts/aws4_request",
            &[("x-grant-id", "g1")],
        );
        for c in [cfg(), from_key()] {
            let p = plan_request(&c, &h, true).unwrap();
            assert_eq!(
                (p.grant_id.as_str(), p.grant_from),
                ("g1", GrantFrom::Header)
            );
            assert_eq!(p.client_credential, None);
            assert!(p.strip.iter().any(|s| s == "authorization"));
            assert_eq!(precheck_request(&c, &h, true).unwrap(), None);
        }
        // Off by default: the access key id names no grant.
        let h = sdk("g1/20260101/us-east-1/sts/aws4_request", &[]);
        assert_eq!(
            plan_request(&cfg(), &h, true).unwrap_err().code,
            ErrorCode::GrantMissing
        );
    }

    #[test]
    fn access_key_id_refusals_name_the_cause() {
        let c = from_key();
        let code = |h: Vec<(String, Vec<u8>)>| plan_request(&c, &h, true).unwrap_err();
        // Scope of another region or service: both named.
        let e = code(sdk("g1/20260101/eu-west-1/sts/aws4_request", &[]));
        assert_eq!(
            (e.status(), e.code),
            (400, ErrorCode::CredentialScopeMismatch)
        );
        for part in [
            "sts",
            "eu-west-1",
            "us-east-1",
            "sts.us-east-1.amazonaws.com",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
        let e = code(sdk("g1/20260101/us-east-1/s3/aws4_request", &[]));
        assert_eq!(e.code, ErrorCode::CredentialScopeMismatch);
        assert!(e.message.contains("service s3"), "{}", e.message);
        // The grant id is validated like the header's.
        let e = code(sdk("../20260101/us-east-1/sts/aws4_request", &[]));
        assert_eq!(e.code, ErrorCode::GrantInvalid);
        assert!(e.message.contains("access key id"), "{}", e.message);
        let long = format!("{}/20260101/us-east-1/sts/aws4_request", "a".repeat(200));
        assert_eq!(code(sdk(&long, &[])).code, ErrorCode::GrantInvalid);
        // Malformed credentials and other schemes.
        for bad in [
            "g1/20260101/us-east-1/sts",
            "g1/2026-01-01/us-east-1/sts/aws4_request",
            "g1/20260101/US-EAST-1/sts/aws4_request",
            "g1/20260101/us-east-1/sts/aws4_request/x",
            "",
        ] {
            let e = code(sdk(bad, &[]));
            assert_eq!(
                (e.status(), e.code),
                (400, ErrorCode::BadAuthorization),
                "{bad}"
            );
        }
        let mut h = sdk("g1/20260101/us-east-1/sts/aws4_request", &[]);
        h[6].1 = b"AWS4-ECDSA-P256-SHA256 Credential=g1/20260101/sts/aws4_request".to_vec();
        let e = code(h.clone());
        assert_eq!(e.code, ErrorCode::BadAuthorization);
        assert!(e.message.contains("SigV4A"), "{}", e.message);
        h[6].1 = b"AWS AKIDEXAMPLE:c2ln".to_vec();
        assert_eq!(code(h.clone()).code, ErrorCode::BadAuthorization);
        h[6].1 = vec![0xff];
        assert_eq!(code(h.clone()).code, ErrorCode::BadHeader);
        // No Authorization at all: GrantMissing names both ways.
        h.remove(6);
        let e = code(h);
        assert_eq!((e.status(), e.code), (401, ErrorCode::GrantMissing));
        assert!(e.message.contains("x-grant-id") && e.message.contains("Credential="));
        // Two of them.
        let mut h = sdk("g1/20260101/us-east-1/sts/aws4_request", &[]);
        h.push(h[6].clone());
        assert_eq!(code(h).code, ErrorCode::GrantAmbiguous);
        // A hand-off header that is not a credential scope.
        let h = sdk(
            "g1/20260101/us-east-1/sts/aws4_request",
            &[(CREDENTIAL_HEADER, "g1")],
        );
        assert_eq!(code(h).code, ErrorCode::BadAuthorization);
    }

    #[test]
    fn access_key_id_with_s3_payload_tokens() {
        let c = from_key();
        let s3 = |token: &str| {
            let mut h = sdk(
                "g1/20260101/us-east-1/s3/aws4_request",
                &[("x-amz-content-sha256", token), ("content-length", "10")],
            );
            h[0].1 = b"PUT".to_vec();
            h[1].1 = b"/bucket/key".to_vec();
            h[2].1 = b"s3.us-east-1.amazonaws.com".to_vec();
            plan_request(&c, &h, false)
        };
        let hash = "ab".repeat(32);
        assert_eq!(s3(&hash).unwrap().payload_hash, hash);
        assert_eq!(
            s3(STREAMING_UNSIGNED_TRAILER).unwrap().payload_hash,
            STREAMING_UNSIGNED_TRAILER
        );
        let e = s3("STREAMING-AWS4-HMAC-SHA256-PAYLOAD").unwrap_err();
        assert_eq!(e.code, ErrorCode::ChunkSignedPayloadUnsupported);
    }

    #[test]
    fn default_port_is_dropped_from_the_signed_host() {
        let mut h = base(&[]);
        h[2].1 = b"sts.us-east-1.amazonaws.com:80".to_vec();
        let p = plan_request(&cfg(), &h, true).unwrap();
        assert_eq!(
            p.new_authority.as_deref(),
            Some("sts.us-east-1.amazonaws.com")
        );
        h[2].1 = b"sts.us-east-1.amazonaws.com:8443".to_vec();
        let p = plan_request(&cfg(), &h, true).unwrap();
        assert_eq!(p.endpoint.host, "sts.us-east-1.amazonaws.com:8443");
        assert_eq!(p.new_authority, None);
    }
}
