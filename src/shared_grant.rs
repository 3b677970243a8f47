//! The shared-data codec of a cached grant: the bytes one worker puts into Envoy's shared
//! data (shared by every worker of the process) for the others, and their key.

use crate::grant_cache::CachedGrant;
use crate::json::{json_fields, JsonWriter};
use crate::policy::{Cidr, Policy};
use crate::vault::{Credentials, DynamicKind, DynamicSource};
use serde_json::Value;

/// The shared-data key of a grant.
pub fn key(grant: &str) -> String {
    format!("grant_sigv4/v1/{grant}")
}

/// Bytes for Envoy's shared data (shared by every worker of the process): compact JSON,
/// the fields in declaration order (the layout `#[derive(Serialize)]` gave), e.g.
/// `{"creds":{"access_key_id":..,"secret_access_key":..,"session_token":null},
/// "policy":{"services":null,..,"source_cidrs":[{"addr":"10.0.0.0","prefix":8}]},
/// "fetched_at":1,"fresh_until":2,"usable_until":3,"refresh_at":4,
/// "dynamic":{"mount":"aws","role":"r","kind":"Creds"}}`.
pub fn encode(g: &CachedGrant) -> Vec<u8> {
    let mut j = JsonWriter::default();
    j.begin();
    j.key("creds");
    j.begin();
    j.str("access_key_id", &g.creds.access_key_id);
    j.str("secret_access_key", &g.creds.secret_access_key);
    j.opt_str("session_token", g.creds.session_token.as_deref());
    j.end();
    j.key("policy");
    let p = &g.policy;
    j.begin();
    j.opt_str_list("services", p.services.as_deref());
    j.opt_str_list("regions", p.regions.as_deref());
    j.opt_str_list("methods", p.methods.as_deref());
    j.opt_str_list("principals", p.principals.as_deref());
    j.key("source_cidrs");
    match &p.source_cidrs {
        None => j.out.push_str("null"),
        Some(cidrs) => {
            j.out.push('[');
            for (i, c) in cidrs.iter().enumerate() {
                if i > 0 {
                    j.out.push(',');
                }
                j.begin();
                j.str("addr", &c.addr.to_string());
                j.u64("prefix", u64::from(c.prefix));
                j.end();
            }
            j.out.push(']');
        }
    }
    j.end();
    j.u64("fetched_at", g.fetched_at);
    j.u64("fresh_until", g.fresh_until);
    j.u64("usable_until", g.usable_until);
    j.u64("refresh_at", g.refresh_at);
    j.key("dynamic");
    match &g.dynamic {
        None => j.out.push_str("null"),
        Some(d) => {
            j.begin();
            j.str("mount", &d.mount);
            j.str("role", &d.role);
            j.str(
                "kind",
                match d.kind {
                    DynamicKind::Creds => "Creds",
                    DynamicKind::Sts => "Sts",
                },
            );
            j.end();
        }
    }
    j.end();
    j.out.into_bytes()
}

/// Read [`encode`]'s bytes back; `None` for anything else. Accepts what
/// `#[derive(Deserialize)]` accepted (members in any order, unknown members ignored,
/// `null` or absent for `None`).
pub fn decode(bytes: &[u8]) -> Option<CachedGrant> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let [creds, policy, fetched_at, fresh_until, usable_until, refresh_at, dynamic] = json_fields(
        &v,
        [
            "creds",
            "policy",
            "fetched_at",
            "fresh_until",
            "usable_until",
            "refresh_at",
            "dynamic",
        ],
    )?;
    let [akid, secret, token] = json_fields(
        creds?,
        ["access_key_id", "secret_access_key", "session_token"],
    )?;
    let creds = Credentials {
        access_key_id: json_string(akid?)?,
        secret_access_key: json_string(secret?)?,
        session_token: optional(token, json_string)?,
    };
    let [services, regions, methods, principals, source_cidrs] = json_fields(
        policy?,
        [
            "services",
            "regions",
            "methods",
            "principals",
            "source_cidrs",
        ],
    )?;
    let policy = Policy {
        services: optional(services, json_strings)?,
        regions: optional(regions, json_strings)?,
        methods: optional(methods, json_strings)?,
        principals: optional(principals, json_strings)?,
        source_cidrs: optional(source_cidrs, |c| {
            c.as_array()?.iter().map(json_cidr).collect()
        })?,
    };
    let dynamic = match dynamic {
        None => None,
        Some(d) => {
            let [mount, role, kind] = json_fields(d, ["mount", "role", "kind"])?;
            Some(DynamicSource {
                mount: json_string(mount?)?,
                role: json_string(role?)?,
                kind: json_kind(kind?)?,
            })
        }
    };
    Some(CachedGrant {
        creds,
        policy,
        fetched_at: fetched_at?.as_u64()?,
        fresh_until: fresh_until?.as_u64()?,
        usable_until: usable_until?.as_u64()?,
        refresh_at: refresh_at?.as_u64()?,
        dynamic,
    })
}

/// An `Option` field: absent or `null` is `Some(None)`, a value `f` refuses is `None`.
fn optional<T>(v: Option<&Value>, f: impl Fn(&Value) -> Option<T>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => f(v).map(Some),
    }
}

fn json_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn json_strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(json_string).collect()
}

fn json_cidr(v: &Value) -> Option<Cidr> {
    let [addr, prefix] = json_fields(v, ["addr", "prefix"])?;
    Some(Cidr {
        addr: addr?.as_str()?.parse().ok()?,
        prefix: u8::try_from(prefix?.as_u64()?).ok()?,
    })
}

/// A unit variant: `"Creds"`, or `{"Creds": null}` as serde also reads it.
fn json_kind(v: &Value) -> Option<DynamicKind> {
    let name = match v {
        Value::String(s) => s.as_str(),
        Value::Object(m) if m.len() == 1 => match m.iter().next() {
            Some((k, Value::Null)) => k.as_str(),
            _ => return None,
        },
        _ => return None,
    };
    match name {
        "Creds" => Some(DynamicKind::Creds),
        "Sts" => Some(DynamicKind::Sts),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant_cache::fixtures::stat;

    /// The layout `#[derive(Serialize, Deserialize)]` gave before the JSON was hand-written.
    mod derived {
        use serde::{Deserialize, Serialize};
        use std::net::IpAddr;

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Creds {
            pub access_key_id: String,
            pub secret_access_key: String,
            pub session_token: Option<String>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Cidr {
            pub addr: IpAddr,
            pub prefix: u8,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Policy {
            pub services: Option<Vec<String>>,
            pub regions: Option<Vec<String>>,
            pub methods: Option<Vec<String>>,
            pub principals: Option<Vec<String>>,
            pub source_cidrs: Option<Vec<Cidr>>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub enum Kind {
            Creds,
            Sts,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Dynamic {
            pub mount: String,
            pub role: String,
            pub kind: Kind,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Grant {
            pub creds: Creds,
            pub policy: Policy,
            pub fetched_at: u64,
            pub fresh_until: u64,
            pub usable_until: u64,
            pub refresh_at: u64,
            pub dynamic: Option<Dynamic>,
        }
    }

    fn to_derived(g: &CachedGrant) -> derived::Grant {
        let p = &g.policy;
        derived::Grant {
            creds: derived::Creds {
                access_key_id: g.creds.access_key_id.clone(),
                secret_access_key: g.creds.secret_access_key.clone(),
                session_token: g.creds.session_token.clone(),
            },
            policy: derived::Policy {
                services: p.services.clone(),
                regions: p.regions.clone(),
                methods: p.methods.clone(),
                principals: p.principals.clone(),
                source_cidrs: p.source_cidrs.as_ref().map(|v| {
                    v.iter()
                        .map(|c| derived::Cidr {
                            addr: c.addr,
                            prefix: c.prefix,
                        })
                        .collect()
                }),
            },
            fetched_at: g.fetched_at,
            fresh_until: g.fresh_until,
            usable_until: g.usable_until,
            refresh_at: g.refresh_at,
            dynamic: g.dynamic.as_ref().map(|d| derived::Dynamic {
                mount: d.mount.clone(),
                role: d.role.clone(),
                kind: match d.kind {
                    DynamicKind::Creds => derived::Kind::Creds,
                    DynamicKind::Sts => derived::Kind::Sts,
                },
            }),
        }
    }

    #[test]
    fn encoding_is_the_derived_layout() {
        let full = CachedGrant {
            creds: Credentials {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "s\"\\/\u{1}é".into(),
                session_token: Some("tok".into()),
            },
            policy: Policy {
                services: Some(vec!["s3".into(), "sts".into()]),
                regions: Some(vec![]),
                methods: Some(vec!["GET".into()]),
                principals: Some(vec!["spiffe://a/*".into()]),
                source_cidrs: Some(vec![
                    Cidr::parse("10.0.0.0/8").unwrap(),
                    Cidr::parse("fd00::1:0/112").unwrap(),
                    Cidr::parse("::ffff:1.2.3.4").unwrap(),
                ]),
            },
            fetched_at: 0,
            fresh_until: u64::MAX,
            usable_until: 3,
            refresh_at: 4,
            dynamic: Some(DynamicSource {
                mount: "aws/x".into(),
                role: "r".into(),
                kind: DynamicKind::Sts,
            }),
        };
        let mut creds_kind = full.clone();
        creds_kind.dynamic = Some(DynamicSource {
            mount: "aws".into(),
            role: "r".into(),
            kind: DynamicKind::Creds,
        });
        for g in [full, creds_kind, stat("A", 100)] {
            let derived_bytes = serde_json::to_vec(&to_derived(&g)).unwrap();
            assert_eq!(
                String::from_utf8(encode(&g)).unwrap(),
                String::from_utf8(derived_bytes.clone()).unwrap()
            );
            assert_eq!(decode(&derived_bytes), Some(g));
        }
    }

    /// `decode` accepts and refuses what the derived `Deserialize` did.
    #[test]
    fn decoding_is_the_derived_one() {
        let base = String::from_utf8(encode(&stat("A", 100))).unwrap();
        let creds = r#"{"access_key_id":"A","secret_access_key":"s"}"#;
        let pol = r#"{"services":["s3"],"source_cidrs":[{"addr":"::1","prefix":128}]}"#;
        let cases: Vec<String> = vec![
            base.clone(),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","role":"r","kind":"Sts"}"#,
            ),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"kind":{"Creds":null},"role":"r","mount":"m"}"#,
            ),
            base.replace(r#""dynamic":null"#, r#""dynamic":["m","r","Creds"]"#),
            base.replace(r#""dynamic":null"#, r#""dynamic":["m","r"]"#),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","role":"r","kind":"creds"}"#,
            ),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","role":"r","kind":{"Sts":1}}"#,
            ),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","kind":"Sts"}"#,
            ),
            base.replace(r#","dynamic":null"#, ""),
            base.replace(r#""fetched_at":100"#, r#""fetched_at":-1"#),
            base.replace(r#""fetched_at":100"#, r#""fetched_at":1.0"#),
            base.replace(r#""fetched_at":100"#, r#""fetched_at":null"#),
            base.replace(
                r#""fetched_at":100"#,
                r#""fetched_at":18446744073709551615"#,
            ),
            base.replace(
                r#""fetched_at":100"#,
                r#""fetched_at":18446744073709551616"#,
            ),
            base.replace(r#""fetched_at":100,"#, ""),
            base.replace(r#""session_token":null"#, r#""session_token":"t""#),
            base.replace(r#""session_token":null"#, r#""session_token":7"#),
            base.replace(r#""session_token":null"#, r#""extra":{"x":[1,2]}"#),
            base.replace(r#""services":null"#, r#""services":["a",null]"#),
            base.replace(r#""services":null"#, r#""services":"a""#),
            base.replace(
                r#""source_cidrs":null"#,
                r#""source_cidrs":[{"addr":"1.2.3.4","prefix":24}]"#,
            ),
            base.replace(
                r#""source_cidrs":null"#,
                r#""source_cidrs":[{"addr":"1.2.3.4","prefix":256}]"#,
            ),
            base.replace(
                r#""source_cidrs":null"#,
                r#""source_cidrs":[{"addr":"1.2.3","prefix":2}]"#,
            ),
            base.replace(r#""source_cidrs":null"#, r#""source_cidrs":[["::1",3]]"#),
            format!(r#"[{creds},{pol},1,2,3,4,null]"#),
            format!(r#"[{creds},{pol},1,2,3,4]"#),
            format!(r#"[{creds},{pol},1,2,3,4,null,5]"#),
            format!(
                r#"{{"policy":{pol},"creds":{creds},"refresh_at":4,"usable_until":3,"fresh_until":2,"fetched_at":1}}"#
            ),
            "null".into(),
            "{}".into(),
            "[]".into(),
            "\"x\"".into(),
            format!("{base} x"),
        ];
        for c in cases {
            let derived = serde_json::from_str::<derived::Grant>(&c).ok();
            let ours = decode(c.as_bytes());
            assert_eq!(ours.as_ref().map(to_derived), derived, "{c}");
        }
    }
}
