//! Checks of every input before anything is stored. The messages name the bad input and,
//! for values that are not secret, show it; a secret or session token is never echoed.
//! The whole record then goes through the filter's own parser ([`filter_accepts`]).

use grant_sigv4_core::policy::Cidr;
use serde_json::{Map, Value};

/// Static key fields of a record.
pub const STATIC_FIELDS: [&str; 3] = ["access_key_id", "secret_access_key", "session_token"];
/// Dynamic source fields of a record.
pub const DYNAMIC_FIELDS: [&str; 3] = ["aws_role", "aws_mount", "aws_credential_type"];

/// A policy rule: record field, the flag that sets it, the flag that clears it.
pub struct Rule {
    pub field: &'static str,
    pub flag: &'static str,
    pub clear: &'static str,
    pub label: &'static str,
}

pub const RULES: [Rule; 5] = [
    Rule {
        field: "allowed_services",
        flag: "allow-services",
        clear: "clear-services",
        label: "services",
    },
    Rule {
        field: "allowed_regions",
        flag: "allow-regions",
        clear: "clear-regions",
        label: "regions",
    },
    Rule {
        field: "allowed_methods",
        flag: "allow-methods",
        clear: "clear-methods",
        label: "methods",
    },
    Rule {
        field: "allowed_principals",
        flag: "allow-principals",
        clear: "clear-principals",
        label: "principals",
    },
    Rule {
        field: "allowed_source_cidrs",
        flag: "allow-source-cidrs",
        clear: "clear-source-cidrs",
        label: "source cidrs",
    },
];

/// HTTP methods a grant may be limited to.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

pub const MAX_DESCRIPTION: usize = 1024;

/// Describe how a rejected secret-like value is wrong, without showing it.
fn shape(s: &str) -> String {
    let mut notes = vec![format!("{} characters", s.chars().count())];
    if s.chars().any(|c| c == ' ' || c == '\t') {
        notes.push("holds spaces".into());
    }
    if s.chars().any(|c| c.is_control()) {
        notes.push("holds control characters".into());
    }
    if !s.is_ascii() {
        notes.push("holds non-ASCII characters".into());
    }
    notes.join(", ")
}

pub fn grant_id(id: &str) -> Result<(), String> {
    grant_sigv4_core::vault::validate_grant_id(id.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("grant id {id:?}: {}", e.describe()))
}

pub fn access_key_id(s: &str) -> Result<(), String> {
    let ok = (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        return Ok(());
    }
    let mut why = shape(s);
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        why.push_str(", holds lower-case letters");
    }
    // Not echoed: a secret pasted into the wrong flag must not end up in a terminal log.
    Err(format!(
        "--access-key-id: an access key id is 16 to 128 characters of A-Z and 0-9, like \
         AKIAIOSFODNN7EXAMPLE (got {why})"
    ))
}

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

pub fn secret_access_key(s: &str) -> Result<(), String> {
    if printable(s, 128) {
        return Ok(());
    }
    Err(format!(
        "secret access key: must be 1 to 128 printable ASCII characters without spaces \
         (got {})",
        shape(s)
    ))
}

pub fn session_token(s: &str) -> Result<(), String> {
    if printable(s, 8192) {
        return Ok(());
    }
    Err(format!(
        "session token: must be 1 to 8192 printable ASCII characters without spaces (got {})",
        shape(s)
    ))
}

/// A role name or a mount path segment: the filter's rule for `aws_role`/`aws_mount`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.bytes().all(|b| b == b'.')
}

pub fn aws_role(s: &str) -> Result<(), String> {
    if is_name(s) {
        return Ok(());
    }
    Err(format!(
        "--aws-role {s:?}: a role name is 1 to 128 characters of A-Z a-z 0-9 - _ ."
    ))
}

/// The AWS secrets engine mount, without surrounding slashes.
pub fn aws_mount(s: &str) -> Result<String, String> {
    let m = s.trim_matches('/');
    if m.split('/').all(is_name) {
        return Ok(m.to_string());
    }
    Err(format!(
        "--aws-mount {s:?}: a mount path is segments of A-Z a-z 0-9 - _ . separated by /"
    ))
}

pub fn credential_type(s: &str) -> Result<(), String> {
    match s {
        "creds" | "sts" => Ok(()),
        _ => Err(format!("--credential-type {s:?}: must be creds or sts")),
    }
}

/// The filter's rule for `vault.kv_mount` and `vault.path_prefix`.
fn is_path_part(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !s.split('/').any(|seg| seg == "." || seg == "..")
}

pub fn kv_mount(s: &str) -> Result<String, String> {
    let m = s.trim_matches('/');
    if !m.is_empty() && is_path_part(m) {
        return Ok(m.to_string());
    }
    Err(format!(
        "--kv-mount {s:?}: must be a mount path such as \"secret\""
    ))
}

pub fn path_prefix(s: &str) -> Result<String, String> {
    let p = s.trim_start_matches('/');
    if is_path_part(p) && !p.contains("//") {
        return Ok(p.to_string());
    }
    Err(format!(
        "--path-prefix {s:?}: may hold only letters, digits, '-', '_', '.', '/' (like \"aws/grants/\")"
    ))
}

pub fn description(s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_DESCRIPTION {
        return Err(format!(
            "--description: at most {MAX_DESCRIPTION} characters (got {})",
            s.chars().count()
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err("--description: holds control characters".into());
    }
    Ok(())
}

/// Split comma-separated flag values into a list, trimmed, without empties and repeats.
pub fn split_list(values: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        for item in v.split(',') {
            let item = item.trim();
            if !item.is_empty() && !out.iter().any(|x| x == item) {
                out.push(item.to_string());
            }
        }
    }
    out
}

/// Check (and normalise) the items of one policy rule given on the command line.
pub fn rule_items(rule: &Rule, values: &[&str]) -> Result<Vec<String>, String> {
    let flag = rule.flag;
    let items = split_list(values);
    if items.is_empty() {
        return Err(format!(
            "--{flag}: empty list (it would refuse every request); use --{} to lift the \
             restriction",
            rule.clear
        ));
    }
    match rule.field {
        "allowed_services" | "allowed_regions" => {
            for i in &items {
                let ok = i.len() <= 64
                    && i.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    let what = if rule.field == "allowed_services" {
                        "a SigV4 signing name such as s3, sts or dynamodb"
                    } else {
                        "a region such as us-east-1"
                    };
                    return Err(format!(
                        "--{flag}: {i:?} is not {what} (lower-case letters, digits and '-')"
                    ));
                }
            }
            Ok(items)
        }
        "allowed_methods" => {
            let mut out = Vec::new();
            for i in &items {
                let m = i.to_ascii_uppercase();
                if !METHODS.contains(&m.as_str()) {
                    return Err(format!(
                        "--{flag}: unknown method {i:?} (one of {})",
                        METHODS.join(", ")
                    ));
                }
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            Ok(out)
        }
        "allowed_principals" => {
            for i in &items {
                let bad = i.len() > 1024
                    || i.chars().any(|c| c.is_whitespace() || c.is_control())
                    || i.trim_end_matches('*').contains('*')
                    || i.ends_with("**");
                if bad {
                    return Err(format!(
                        "--{flag}: {i:?} is not a principal such as \
                         spiffe://cluster.local/ns/app/sa/web, or a prefix ending in one '*'"
                    ));
                }
            }
            Ok(items)
        }
        "allowed_source_cidrs" => {
            for i in &items {
                if Cidr::parse(i).is_none() {
                    return Err(format!(
                        "--{flag}: {i:?} is not an address range such as 10.0.0.0/8, \
                         127.0.0.1/32 or ::1/128"
                    ));
                }
            }
            Ok(items)
        }
        _ => Ok(items),
    }
}

/// Run the filter's own record parser over `record`: what the filter would answer for it.
pub fn filter_accepts(record: &Map<String, Value>) -> Result<(), String> {
    let body = serde_json::json!({ "data": { "data": record } }).to_string();
    match grant_sigv4_core::vault::parse_grant_response(Some(200), body.as_bytes()) {
        Ok(_) => Ok(()),
        Err(grant_sigv4_core::vault::VaultError::BadRecord(m)) => {
            Err(format!("the filter would refuse this record: {m}"))
        }
        Err(e) => Err(format!("the filter would refuse this record: {e:?}")),
    }
}

/// The problems of a stored record, for `show` (never containing a secret).
pub fn record_problems(record: &Map<String, Value>) -> Option<String> {
    filter_accepts(record).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(field: &str) -> &'static Rule {
        RULES.iter().find(|r| r.field == field).unwrap()
    }

    #[test]
    fn grant_ids() {
        for ok in ["g-abc", "A.b_c-9", "x", &"a".repeat(128), ".a"] {
            assert!(grant_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".",
            "a/b",
            "a b",
            "ä",
            "a?x",
            &"a".repeat(129),
            "a%2f",
        ] {
            let e = grant_id(bad).unwrap_err();
            assert!(e.starts_with("grant id"), "{bad}: {e}");
        }
    }

    #[test]
    fn access_key_ids() {
        assert!(access_key_id("AKIAIOSFODNN7EXAMPLE").is_ok());
        assert!(access_key_id(&"A".repeat(128)).is_ok());
        for bad in [
            "AKIA",
            "akiaiosfodnn7example",
            "AKIA IOSFODNN7EXAMPLE",
            &"A".repeat(129),
        ] {
            let e = access_key_id(bad).unwrap_err();
            assert!(e.contains("--access-key-id"), "{e}");
        }
        // The value is not echoed (it might be a secret pasted into the wrong flag).
        let e = access_key_id("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").unwrap_err();
        assert!(!e.contains("wJalr"), "{e}");
        assert!(e.contains("40 characters"), "{e}");
    }

    #[test]
    fn secrets_are_checked_but_never_echoed() {
        assert!(secret_access_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").is_ok());
        for bad in [
            "",
            "has space inside",
            "tab\there",
            &"x".repeat(129),
            "nön-ascii",
        ] {
            let e = secret_access_key(bad).unwrap_err();
            assert!(e.starts_with("secret access key"), "{e}");
            if !bad.is_empty() {
                assert!(!e.contains(bad), "{e}");
            }
        }
        assert!(session_token(&"T".repeat(8192)).is_ok());
        let e = session_token(&"T".repeat(8193)).unwrap_err();
        assert!(e.contains("8193 characters"), "{e}");
        assert!(session_token("a b").unwrap_err().contains("holds spaces"));
    }

    #[test]
    fn roles_mounts_types() {
        assert!(aws_role("deploy-ro").is_ok());
        assert!(aws_role("../x").is_err());
        assert!(aws_role("").is_err());
        assert_eq!(aws_mount("/aws/").unwrap(), "aws");
        assert_eq!(aws_mount("team/aws").unwrap(), "team/aws");
        assert!(aws_mount("a/../b").is_err());
        assert!(aws_mount("a b").is_err());
        assert!(credential_type("creds").is_ok());
        assert!(credential_type("sts").is_ok());
        assert!(credential_type("iam_user")
            .unwrap_err()
            .contains("creds or sts"));
    }

    #[test]
    fn mounts_and_prefixes() {
        assert_eq!(kv_mount("secret").unwrap(), "secret");
        assert_eq!(kv_mount("/kv/team/").unwrap(), "kv/team");
        assert!(kv_mount("").is_err());
        assert!(kv_mount("a/../b").is_err());
        assert!(kv_mount("a?b").is_err());
        assert_eq!(path_prefix("aws/grants/").unwrap(), "aws/grants/");
        assert_eq!(path_prefix("/x/").unwrap(), "x/");
        assert_eq!(path_prefix("").unwrap(), "");
        assert!(path_prefix("../x/").is_err());
        assert!(path_prefix("a//b/").is_err());
    }

    #[test]
    fn lists_split_trim_and_dedupe() {
        assert_eq!(split_list(&["s3, sts", "s3", ""]), vec!["s3", "sts"]);
        assert!(split_list(&[" , "]).is_empty());
    }

    #[test]
    fn policy_rules() {
        let services = rule("allowed_services");
        assert_eq!(
            rule_items(services, &["s3,sts"]).unwrap(),
            vec!["s3", "sts"]
        );
        let e = rule_items(services, &["S3"]).unwrap_err();
        assert!(
            e.contains("--allow-services") && e.contains("\"S3\""),
            "{e}"
        );
        let e = rule_items(services, &[","]).unwrap_err();
        assert!(
            e.contains("empty list") && e.contains("--clear-services"),
            "{e}"
        );

        let regions = rule("allowed_regions");
        assert!(rule_items(regions, &["eu-west-1,us-east-1"]).is_ok());
        let e = rule_items(regions, &["eu_west_1"]).unwrap_err();
        assert!(
            e.contains("--allow-regions") && e.contains("eu_west_1"),
            "{e}"
        );

        let methods = rule("allowed_methods");
        assert_eq!(
            rule_items(methods, &["get,HEAD", "Get"]).unwrap(),
            vec!["GET", "HEAD"]
        );
        let e = rule_items(methods, &["FETCH"]).unwrap_err();
        assert!(e.contains("unknown method \"FETCH\""), "{e}");

        let principals = rule("allowed_principals");
        assert!(rule_items(
            principals,
            &["spiffe://cluster.local/ns/app/sa/web,spiffe://cluster.local/ns/ci/*"]
        )
        .is_ok());
        assert!(rule_items(principals, &["spiffe://a/*/b"]).is_err());
        assert!(rule_items(principals, &["a**"]).is_err());

        let cidrs = rule("allowed_source_cidrs");
        assert!(rule_items(cidrs, &["10.0.0.0/8,127.0.0.1/32,::1/128,192.168.1.7"]).is_ok());
        for bad in ["10.0.0.0/33", "::1/129", "10.0.0", "localhost"] {
            let e = rule_items(cidrs, &[bad]).unwrap_err();
            assert!(e.contains("--allow-source-cidrs") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn descriptions() {
        assert!(description("CI deploys to the artifacts bucket").is_ok());
        assert!(description("a\nb").is_err());
        assert!(description(&"d".repeat(MAX_DESCRIPTION + 1)).is_err());
    }

    #[test]
    fn the_filter_parser_is_the_final_check() {
        let rec = |v: Value| v.as_object().cloned().unwrap();
        assert!(filter_accepts(&rec(serde_json::json!({
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "allowed_methods": ["GET"],
        })))
        .is_ok());
        assert!(filter_accepts(&rec(serde_json::json!({"aws_role": "r1"}))).is_ok());
        let e = filter_accepts(&rec(serde_json::json!({
            "aws_role": "r1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        })))
        .unwrap_err();
        assert!(e.contains("both"), "{e}");
        let e = filter_accepts(&rec(
            serde_json::json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE"}),
        ))
        .unwrap_err();
        assert!(e.contains("secret_access_key"), "{e}");
    }
}
