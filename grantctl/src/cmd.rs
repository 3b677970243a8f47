//! The commands.

use crate::args::{self, Parsed, Spec};
use crate::secrets::{self, StaticKey, STATIC_FLAGS};
use crate::validate::{self, DYNAMIC_FIELDS, RULES, STATIC_FIELDS};
use crate::vault::{Answer, Settings, Vault};
use crate::CliError;
use serde_json::{json, Map, Value};

const POLICY_FLAGS: [&str; 5] = [
    "allow-services",
    "allow-regions",
    "allow-methods",
    "allow-principals",
    "allow-source-cidrs",
];
const CLEAR_FLAGS: [&str; 5] = [
    "clear-services",
    "clear-regions",
    "clear-methods",
    "clear-principals",
    "clear-source-cidrs",
];

const CREATE: Spec = Spec {
    values: &[
        "access-key-id",
        "secret-access-key",
        "session-token",
        "aws-role",
        "aws-mount",
        "credential-type",
        "grant-id",
        "description",
        "allow-services",
        "allow-regions",
        "allow-methods",
        "allow-principals",
        "allow-source-cidrs",
    ],
    repeatable: &POLICY_FLAGS,
    switches: &[
        "secret-access-key-stdin",
        "session-token-stdin",
        "skip-role-check",
    ],
};

const ROTATE: Spec = Spec {
    values: &["access-key-id", "secret-access-key", "session-token"],
    repeatable: &[],
    switches: &["secret-access-key-stdin", "session-token-stdin"],
};

const POLICY: Spec = Spec {
    values: &[
        "allow-services",
        "allow-regions",
        "allow-methods",
        "allow-principals",
        "allow-source-cidrs",
        "description",
    ],
    repeatable: &POLICY_FLAGS,
    switches: &[
        "clear-all",
        "clear-services",
        "clear-regions",
        "clear-methods",
        "clear-principals",
        "clear-source-cidrs",
        "clear-description",
    ],
};

const SHOW: Spec = Spec {
    values: &[],
    repeatable: &[],
    switches: &["json"],
};

const NONE: Spec = Spec {
    values: &[],
    repeatable: &[],
    switches: &[],
};

const COMMON: &str = "
Common flags:
  --kv-mount MOUNT       KV version 2 mount (default secret)
  --path-prefix PREFIX   path of the grants in the mount (default aws/grants/)
";

const POLICY_HELP: &str = "
Policy flags (comma-separated lists; repeat a flag to add more; absent = unrestricted):
  --allow-services s3,sts          SigV4 signing names
  --allow-regions eu-west-1        signing regions
  --allow-methods GET,HEAD         HTTP methods (GET HEAD POST PUT DELETE PATCH OPTIONS)
  --allow-principals ID,...        peer identities, exact or a prefix ending in '*'
                                   (spiffe://cluster.local/ns/app/sa/web, spiffe://cluster.local/ns/ci/*)
  --allow-source-cidrs 10.0.0.0/8  peer address ranges (IPv4 or IPv6)
";

pub fn help(cmd: &str) -> Option<String> {
    let text = match cmd {
        "create" => format!(
            "\
Usage:
  grantctl create --access-key-id ID [--secret-access-key-stdin] [--session-token-stdin]
                  [--grant-id ID] [--description TEXT] [policy flags]
  grantctl create --aws-role ROLE [--aws-mount aws] [--credential-type creds|sts]
                  [--skip-role-check] [--grant-id ID] [--description TEXT] [policy flags]

Stores a new grant and prints only its id on stdout. Without --grant-id the id is random
(g- and 26 base32 characters, 128 bits). An existing grant id is never overwritten.

Static key: the secret access key comes from stdin (--secret-access-key-stdin; with
--session-token-stdin the second line is the session token), else from the environment
(AWS_SECRET_ACCESS_KEY, and AWS_SESSION_TOKEN with it). --secret-access-key VALUE and
--session-token VALUE work but leave the value in shell history.

Dynamic key: the filter reads short-lived keys from the AWS secrets engine at
/v1/MOUNT/creds/ROLE (--credential-type creds, the default) or /v1/MOUNT/sts/ROLE. The role
must exist (checked with GET /v1/MOUNT/roles/ROLE unless --skip-role-check).
{POLICY_HELP}{COMMON}"
        ),
        "rotate" => format!(
            "\
Usage:
  grantctl rotate GRANT --access-key-id ID [--secret-access-key-stdin] [--session-token-stdin]

Writes a new version of a static grant with a new key; the grant id, policy and description
stay. Prints the new version number. Fails if the grant changed meanwhile (check-and-set).
The secret comes from stdin, or AWS_SECRET_ACCESS_KEY, as for create. Envoy uses the new
key once its cached credentials expire; deactivate the old key in IAM after that.
{COMMON}"
        ),
        "policy" => format!(
            "\
Usage:
  grantctl policy GRANT [policy flags] [--clear-all] [--clear-services] [--clear-regions]
                  [--clear-methods] [--clear-principals] [--clear-source-cidrs]
                  [--description TEXT | --clear-description]

Writes a new version with the policy changed and the key unchanged; prints the new version
number. A given --allow-* list replaces that rule; --clear-* removes a rule (unrestricted);
--clear-all removes every rule first.
{POLICY_HELP}{COMMON}"
        ),
        "show" => format!(
            "\
Usage:
  grantctl show GRANT [--json]

Prints the grant's kind, access key id or role, policy, description, version and times.
The secret access key and session token are never shown.
{COMMON}"
        ),
        "list" => format!(
            "\
Usage:
  grantctl list

Prints the grant ids under the path prefix, one per line.
{COMMON}"
        ),
        "revoke" => format!(
            "\
Usage:
  grantctl revoke GRANT

Deletes every version and the metadata of the grant. Revoking a grant that does not exist
says so and succeeds. Envoy may use cached credentials until they expire; a static AWS key
stays valid in AWS until you deactivate it in IAM.
{COMMON}"
        ),
        _ => return None,
    };
    Some(text)
}

pub fn dispatch(cmd: &str, rest: &[String]) -> Result<(), CliError> {
    let spec = match cmd {
        "create" => &CREATE,
        "rotate" => &ROTATE,
        "policy" => &POLICY,
        "show" => &SHOW,
        "list" => &NONE,
        "revoke" => &NONE,
        _ => {
            return Err(CliError::Usage(format!(
                "unknown command {cmd:?} (see grantctl --help)"
            )))
        }
    };
    let p = args::parse(cmd, rest, spec)?;
    if p.help {
        if let Some(h) = help(cmd) {
            print!("{h}");
        }
        return Ok(());
    }
    let want = usize::from(cmd != "create" && cmd != "list");
    if p.positionals.len() != want {
        return Err(CliError::Usage(if want == 1 {
            format!("`grantctl {cmd}` takes one grant id (see grantctl {cmd} --help)")
        } else {
            format!(
                "unexpected argument {:?} (see grantctl {cmd} --help)",
                p.positionals.first().map(String::as_str).unwrap_or("")
            )
        }));
    }
    let layout = Layout::from_args(&p)?;
    let grant = match p.positionals.first() {
        Some(g) => {
            validate::grant_id(g).map_err(CliError::Usage)?;
            Some(g.clone())
        }
        None => None,
    };
    match (cmd, grant) {
        ("create", _) => create(&p, &layout),
        ("rotate", Some(g)) => rotate(&p, &layout, &g),
        ("policy", Some(g)) => policy(&p, &layout, &g),
        ("show", Some(g)) => show(&p, &layout, &g),
        ("revoke", Some(g)) => revoke(&layout, &g),
        ("list", _) => list(&layout),
        _ => Err(CliError::Usage(format!("see grantctl {cmd} --help"))),
    }
}

/// Where grants live in the vault.
pub struct Layout {
    pub kv_mount: String,
    pub path_prefix: String,
}

impl Layout {
    fn from_args(p: &Parsed) -> Result<Layout, CliError> {
        Ok(Layout {
            kv_mount: validate::kv_mount(p.value("kv-mount").unwrap_or("secret"))
                .map_err(CliError::Usage)?,
            path_prefix: validate::path_prefix(p.value("path-prefix").unwrap_or("aws/grants/"))
                .map_err(CliError::Usage)?,
        })
    }

    pub fn data_path(&self, grant: &str) -> String {
        format!("/v1/{}/data/{}{grant}", self.kv_mount, self.path_prefix)
    }

    pub fn metadata_path(&self, grant: &str) -> String {
        format!("/v1/{}/metadata/{}{grant}", self.kv_mount, self.path_prefix)
    }
}

fn connect() -> Result<Vault, CliError> {
    Vault::new(Settings::from_env()?)
}

/// Policy rules from `--allow-*` flags: (record field, values).
fn policy_from_flags(p: &Parsed) -> Result<Vec<(&'static str, Vec<String>)>, CliError> {
    let mut out = Vec::new();
    for rule in &RULES {
        let values = p.values(rule.flag);
        if !values.is_empty() {
            out.push((
                rule.field,
                validate::rule_items(rule, &values).map_err(CliError::Usage)?,
            ));
        }
    }
    Ok(out)
}

fn str_list(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

/// Check the mount is KV version 2 (when the token may ask); a KV v1 mount would store the
/// grant at the wrong path.
fn check_kv_mount(v: &Vault, layout: &Layout) -> Result<(), CliError> {
    let a = v.call(
        crate::vault::Method::Get,
        &format!("/v1/sys/internal/ui/mounts/{}", layout.kv_mount),
        None,
    )?;
    if a.status != 200 {
        // Not allowed to ask, or an older server: the write itself will tell.
        return Ok(());
    }
    let data = &a.body["data"];
    let kind = data["type"].as_str().unwrap_or("");
    let version = data["options"]["version"].as_str().unwrap_or("1");
    if kind != "kv" && kind != "generic" {
        return Err(CliError::Usage(format!(
            "--kv-mount {:?} is a {kind:?} secrets engine, not KV version 2",
            layout.kv_mount
        )));
    }
    if version != "2" {
        return Err(CliError::Usage(format!(
            "--kv-mount {:?} is KV version {version}; grants need KV version 2",
            layout.kv_mount
        )));
    }
    Ok(())
}

/// A 404 from the KV mount: no such grant, or no such mount.
fn not_found(v: &Vault, layout: &Layout, grant: &str, a: &Answer) -> CliError {
    if a.is_no_route() {
        return CliError::Vault(format!(
            "no KV mount {:?} at VAULT_ADDR ({}): check --kv-mount",
            layout.kv_mount,
            v.addr()
        ));
    }
    let deleted = a.body["data"]["metadata"]["deletion_time"]
        .as_str()
        .is_some_and(|t| !t.is_empty());
    if deleted {
        CliError::Vault(format!(
            "no such grant: {grant} (its latest version is deleted)"
        ))
    } else {
        CliError::Vault(format!("no such grant: {grant}"))
    }
}

/// The latest version of a grant.
struct Current {
    data: Map<String, Value>,
    version: u64,
    created_time: String,
}

fn read_grant(v: &Vault, layout: &Layout, grant: &str) -> Result<Current, CliError> {
    let a = v.get(&layout.data_path(grant))?;
    match a.status {
        200 => {}
        404 => return Err(not_found(v, layout, grant, &a)),
        _ => return Err(v.unexpected(&format!("reading grant {grant}"), &a)),
    }
    let Some(data) = a.body["data"]["data"].as_object().cloned() else {
        if a.body["data"]["data"].is_null() && a.body["data"]["metadata"].is_object() {
            return Err(CliError::Vault(format!(
                "no such grant: {grant} (its latest version is deleted)"
            )));
        }
        return Err(CliError::Vault(format!(
            "reading grant {grant}: the answer is not a KV version 2 secret (is --kv-mount {:?} \
             KV version 2?)",
            layout.kv_mount
        )));
    };
    let meta = &a.body["data"]["metadata"];
    Ok(Current {
        data,
        version: meta["version"].as_u64().unwrap_or(0),
        created_time: meta["created_time"].as_str().unwrap_or("").to_string(),
    })
}

/// Write a version with check-and-set; returns the new version number.
fn write_grant(
    v: &Vault,
    layout: &Layout,
    grant: &str,
    record: &Map<String, Value>,
    cas: u64,
) -> Result<u64, CliError> {
    validate::filter_accepts(record).map_err(CliError::Usage)?;
    let body = json!({ "options": { "cas": cas }, "data": record });
    let a = v.post(&layout.data_path(grant), &body)?;
    match a.status {
        200 | 204 => Ok(a.body["data"]["version"].as_u64().unwrap_or(cas + 1)),
        400 if a.errors().contains("check-and-set") => Err(CliError::Vault(if cas == 0 {
            format!(
                "grant {grant} already exists (or has deleted versions): nothing was written; \
                 choose another --grant-id, or use rotate/policy to change it"
            )
        } else {
            format!(
                "grant {grant} changed while this command ran (it is past version {cas}): \
                 nothing was written; run the command again"
            )
        })),
        404 if a.is_no_route() => Err(not_found(v, layout, grant, &a)),
        _ => Err(v.unexpected(&format!("writing grant {grant}"), &a)),
    }
}

fn static_fields(record: &mut Map<String, Value>, key: StaticKey) {
    record.insert("access_key_id".into(), Value::String(key.access_key_id));
    record.insert(
        "secret_access_key".into(),
        Value::String(key.secret_access_key),
    );
    if let Some(t) = key.session_token {
        record.insert("session_token".into(), Value::String(t));
    }
}

/// Check the dynamic grant's role exists in the AWS secrets engine and fits the type.
fn check_role(v: &Vault, mount: &str, role: &str, kind: &str) -> Result<(), CliError> {
    let path = format!("/v1/{mount}/roles/{role}");
    let a = v.get(&path)?;
    match a.status {
        200 => {}
        404 if a.is_no_route() => {
            return Err(CliError::Vault(format!(
                "no AWS secrets engine at {mount:?} (GET {path} has no handler): enable it, or \
                 give --aws-mount"
            )))
        }
        404 | 400 => {
            return Err(CliError::Vault(format!(
                "no role {role:?} in the AWS secrets engine at {mount:?} (GET {path} answered \
                 {}): create the role first",
                a.status
            )))
        }
        _ => return Err(v.unexpected(&format!("checking role {role:?}"), &a)),
    }
    let types = a.body["data"]["credential_type"]
        .as_str()
        .map(|s| s.to_string())
        .or_else(|| {
            a.body["data"]["credential_types"].as_array().map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        })
        .unwrap_or_default();
    if kind == "sts"
        && !types.is_empty()
        && !types
            .split(',')
            .any(|t| matches!(t.trim(), "assumed_role" | "federation_token"))
    {
        return Err(CliError::Usage(format!(
            "role {role:?} has credential_type {types}, which the sts endpoint cannot issue: \
             use --credential-type creds"
        )));
    }
    Ok(())
}

fn create(p: &Parsed, layout: &Layout) -> Result<(), CliError> {
    let grant = match p.value("grant-id") {
        Some(g) => {
            validate::grant_id(g).map_err(CliError::Usage)?;
            g.to_string()
        }
        None => secrets::new_grant_id()?,
    };
    let role = p.value("aws-role");
    let static_given: Vec<&str> = STATIC_FLAGS.iter().copied().filter(|f| p.has(f)).collect();
    if let (Some(_), Some(f)) = (role, static_given.first()) {
        return Err(CliError::Usage(format!(
            "--aws-role (dynamic key) and --{f} (static key) exclude each other: a grant holds \
             one or the other"
        )));
    }
    if role.is_none() {
        for f in ["aws-mount", "credential-type", "skip-role-check"] {
            if p.has(f) {
                return Err(CliError::Usage(format!("--{f} needs --aws-role")));
            }
        }
    }
    let mut record = Map::new();
    for (field, items) in policy_from_flags(p)? {
        record.insert(field.into(), str_list(&items));
    }
    if let Some(d) = p.value("description") {
        validate::description(d).map_err(CliError::Usage)?;
        record.insert("description".into(), Value::String(d.to_string()));
    }
    let dynamic = match role {
        Some(role) => {
            validate::aws_role(role).map_err(CliError::Usage)?;
            let mount = validate::aws_mount(p.value("aws-mount").unwrap_or("aws"))
                .map_err(CliError::Usage)?;
            let kind = p.value("credential-type").unwrap_or("creds");
            validate::credential_type(kind).map_err(CliError::Usage)?;
            record.insert("aws_role".into(), Value::String(role.to_string()));
            record.insert("aws_mount".into(), Value::String(mount.clone()));
            record.insert(
                "aws_credential_type".into(),
                Value::String(kind.to_string()),
            );
            Some((mount, role, kind))
        }
        None => None,
    };
    // Everything on the command line is checked before the environment and stdin are read.
    if dynamic.is_none() {
        let akid = p.value("access-key-id").ok_or_else(|| {
            CliError::Usage("missing --access-key-id (or --aws-role for a dynamic grant)".into())
        })?;
        validate::access_key_id(akid).map_err(CliError::Usage)?;
    }
    validate::filter_accepts(&dynamic_or_placeholder(&record)).map_err(CliError::Usage)?;
    let v = connect()?;
    if dynamic.is_none() {
        static_fields(&mut record, secrets::static_key(p)?);
    }
    check_kv_mount(&v, layout)?;
    if let Some((mount, role, kind)) = &dynamic {
        if !p.switch("skip-role-check") {
            check_role(&v, mount, role, kind)?;
        }
    }
    write_grant(&v, layout, &grant, &record, 0)?;
    println!("{grant}");
    Ok(())
}

/// The record with a placeholder static key when it has none yet, to check the rest early.
fn dynamic_or_placeholder(record: &Map<String, Value>) -> Map<String, Value> {
    let mut r = record.clone();
    if !r.contains_key("aws_role") {
        r.insert("access_key_id".into(), json!("AKIAPLACEHOLDER00000"));
        r.insert("secret_access_key".into(), json!("placeholder"));
    }
    r
}

fn rotate(p: &Parsed, layout: &Layout, grant: &str) -> Result<(), CliError> {
    let v = connect()?;
    let key = secrets::static_key(p)?;
    let current = read_grant(&v, layout, grant)?;
    if let Some(role) = current.data.get("aws_role").and_then(Value::as_str) {
        return Err(CliError::Usage(format!(
            "grant {grant} is dynamic (aws_role {role:?}): its keys come from the AWS secrets \
             engine and are not rotated here; rotate the role's root key in Vault instead"
        )));
    }
    let mut record = current.data.clone();
    for f in STATIC_FIELDS {
        record.remove(f);
    }
    if current.data.get("access_key_id").and_then(Value::as_str) == Some(&key.access_key_id) {
        eprintln!(
            "grantctl: note: the access key id is the same as in version {}",
            current.version
        );
    }
    static_fields(&mut record, key);
    let version = write_grant(&v, layout, grant, &record, current.version)?;
    println!("{version}");
    Ok(())
}

fn policy(p: &Parsed, layout: &Layout, grant: &str) -> Result<(), CliError> {
    let sets = policy_from_flags(p)?;
    let description = p.value("description");
    if let Some(d) = description {
        validate::description(d).map_err(CliError::Usage)?;
        if p.switch("clear-description") {
            return Err(CliError::Usage(
                "--description and --clear-description exclude each other".into(),
            ));
        }
    }
    for rule in &RULES {
        if p.switch(rule.clear) && p.has(rule.flag) {
            return Err(CliError::Usage(format!(
                "--{} and --{} exclude each other",
                rule.flag, rule.clear
            )));
        }
    }
    let changes = !sets.is_empty()
        || description.is_some()
        || p.switch("clear-all")
        || p.switch("clear-description")
        || CLEAR_FLAGS.iter().any(|f| p.switch(f));
    if !changes {
        return Err(CliError::Usage(
            "nothing to change: give --allow-*, --clear-* or --description (see grantctl \
             policy --help)"
                .into(),
        ));
    }
    let v = connect()?;
    let current = read_grant(&v, layout, grant)?;
    let mut record = current.data.clone();
    for rule in &RULES {
        if p.switch("clear-all") || p.switch(rule.clear) {
            record.remove(rule.field);
        }
    }
    for (field, items) in sets {
        record.insert(field.into(), str_list(&items));
    }
    if p.switch("clear-description") {
        record.remove("description");
    }
    if let Some(d) = description {
        record.insert("description".into(), Value::String(d.to_string()));
    }
    if record == current.data {
        eprintln!("grantctl: policy unchanged; nothing written");
        println!("{}", current.version);
        return Ok(());
    }
    let version = write_grant(&v, layout, grant, &record, current.version)?;
    println!("{version}");
    Ok(())
}

/// A policy rule of a stored record as a list (arrays or comma-separated strings).
fn stored_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(a) => Some(
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect(),
        ),
        Value::String(s) => Some(validate::split_list(&[s.as_str()])),
        Value::Null => None,
        other => Some(vec![other.to_string()]),
    }
}

fn show(p: &Parsed, layout: &Layout, grant: &str) -> Result<(), CliError> {
    let v = connect()?;
    let current = read_grant(&v, layout, grant)?;
    // The grant's own creation time is in its metadata (the token may not be allowed to read
    // it; then the version's time stands in).
    let meta = v.call(
        crate::vault::Method::Get,
        &layout.metadata_path(grant),
        None,
    )?;
    let (created, versions) = if meta.status == 200 {
        (
            meta.body["data"]["created_time"]
                .as_str()
                .unwrap_or(&current.created_time)
                .to_string(),
            meta.body["data"]["versions"].as_object().map(Map::len),
        )
    } else {
        (current.created_time.clone(), None)
    };
    let d = &current.data;
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    let dynamic = d.contains_key("aws_role");
    let mut out = Map::new();
    out.insert("grant_id".into(), json!(grant));
    out.insert(
        "kind".into(),
        json!(if dynamic { "dynamic" } else { "static" }),
    );
    if dynamic {
        out.insert("aws_role".into(), json!(s("aws_role")));
        out.insert(
            "aws_mount".into(),
            json!(s("aws_mount").unwrap_or_else(|| "aws".into())),
        );
        out.insert(
            "aws_credential_type".into(),
            json!(s("aws_credential_type").unwrap_or_else(|| "creds".into())),
        );
    } else {
        out.insert("access_key_id".into(), json!(s("access_key_id")));
        let stored = |k: &str| {
            if d.contains_key(k) {
                json!("(stored, not shown)")
            } else {
                Value::Null
            }
        };
        out.insert("secret_access_key".into(), stored("secret_access_key"));
        out.insert("session_token".into(), stored("session_token"));
    }
    let mut policy = Map::new();
    for rule in &RULES {
        policy.insert(
            rule.field.into(),
            d.get(rule.field)
                .and_then(stored_list)
                .map_or(Value::Null, |l| str_list(&l)),
        );
    }
    out.insert("policy".into(), Value::Object(policy));
    out.insert("description".into(), json!(s("description")));
    out.insert("version".into(), json!(current.version));
    if let Some(n) = versions {
        out.insert("versions".into(), json!(n));
    }
    out.insert("created_time".into(), json!(created));
    out.insert("updated_time".into(), json!(current.created_time));
    // Names only: an unknown field might hold anything.
    let known = |k: &str| {
        STATIC_FIELDS.contains(&k)
            || DYNAMIC_FIELDS.contains(&k)
            || RULES.iter().any(|r| r.field == k)
            || k == "description"
    };
    let other: Vec<&String> = d.keys().filter(|k| !known(k)).collect();
    out.insert("other_fields".into(), json!(other));
    out.insert(
        "problem".into(),
        json!(validate::record_problems(&current.data)),
    );

    if p.switch("json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default()
        );
        return Ok(());
    }
    let text = |k: &str| out.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut lines: Vec<(String, String)> = vec![
        ("grant".into(), grant.to_string()),
        ("kind".into(), text("kind")),
    ];
    if dynamic {
        lines.push(("aws role".into(), text("aws_role")));
        lines.push(("aws mount".into(), text("aws_mount")));
        lines.push(("credential type".into(), text("aws_credential_type")));
    } else {
        lines.push(("access key id".into(), text("access_key_id")));
        let secret = if d.contains_key("secret_access_key") {
            "(stored, not shown)"
        } else {
            "(missing)"
        };
        lines.push(("secret".into(), secret.into()));
        let token = if d.contains_key("session_token") {
            "(stored, not shown)"
        } else {
            "none"
        };
        lines.push(("session token".into(), token.into()));
    }
    for rule in &RULES {
        let shown = match d.get(rule.field).and_then(stored_list) {
            Some(l) if l.is_empty() => "(none: every request refused)".to_string(),
            Some(l) => l.join(", "),
            None => "any".to_string(),
        };
        lines.push((format!("allowed {}", rule.label), shown));
    }
    lines.push((
        "description".into(),
        s("description").unwrap_or_else(|| "-".into()),
    ));
    lines.push(("version".into(), current.version.to_string()));
    lines.push(("created".into(), created));
    lines.push(("updated".into(), current.created_time.clone()));
    if !other.is_empty() {
        let names: Vec<&str> = other.iter().map(|k| k.as_str()).collect();
        lines.push(("other fields".into(), names.join(", ")));
    }
    if let Some(problem) = validate::record_problems(&current.data) {
        lines.push(("problem".into(), problem));
    }
    for (k, val) in lines {
        println!("{:<22}{val}", format!("{k}:"));
    }
    Ok(())
}

fn revoke(layout: &Layout, grant: &str) -> Result<(), CliError> {
    let v = connect()?;
    let path = layout.metadata_path(grant);
    let meta = v.get(&path)?;
    match meta.status {
        200 => {}
        404 if !meta.is_no_route() => {
            eprintln!("grantctl: no such grant: {grant} (nothing to revoke; already revoked?)");
            return Ok(());
        }
        404 => return Err(not_found(&v, layout, grant, &meta)),
        _ => return Err(v.unexpected(&format!("reading grant {grant}"), &meta)),
    }
    let versions = meta.body["data"]["versions"]
        .as_object()
        .map_or(0, Map::len);
    let a = v.delete(&path)?;
    if !(200..300).contains(&a.status) {
        return Err(v.unexpected(&format!("deleting grant {grant}"), &a));
    }
    println!("revoked {grant} ({versions} version(s) and metadata deleted)");
    eprintln!(
        "grantctl: note: Envoy may use cached credentials until they expire; a static AWS key \
         stays valid in AWS until it is deactivated in IAM"
    );
    Ok(())
}

fn list(layout: &Layout) -> Result<(), CliError> {
    // The prefix may end in a partial name ("grants/g-"): list its folder and filter.
    let (folder, stem) = match layout.path_prefix.rfind('/') {
        Some(i) => layout.path_prefix.split_at(i + 1),
        None => ("", layout.path_prefix.as_str()),
    };
    let v = connect()?;
    let path = format!("/v1/{}/metadata/{folder}?list=true", layout.kv_mount);
    let a = v.get(&path)?;
    let keys = match a.status {
        200 => a.body["data"]["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        404 if a.is_no_route() => {
            return Err(CliError::Vault(format!(
                "no KV mount {:?} at VAULT_ADDR ({}): check --kv-mount",
                layout.kv_mount,
                v.addr()
            )))
        }
        404 => Vec::new(),
        _ => return Err(v.unexpected("listing grants", &a)),
    };
    let mut ids: Vec<&str> = keys
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|k| k.strip_prefix(stem))
        .filter(|k| !k.is_empty() && !k.ends_with('/'))
        .collect();
    ids.sort_unstable();
    for id in ids {
        println!("{id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn usage_of(r: Result<(), CliError>) -> String {
        match r {
            Err(CliError::Usage(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_command_has_help() {
        for c in ["create", "rotate", "policy", "show", "list", "revoke"] {
            assert!(help(c).unwrap().contains(&format!("grantctl {c}")), "{c}");
            assert!(dispatch(c, &words(&["--help"])).is_ok());
        }
        assert!(help("nope").is_none());
    }

    #[test]
    fn usage_errors_before_any_vault_call() {
        // None of these reach the vault: they fail on the command line alone.
        let cases: &[(&str, &[&str], &str)] = &[
            ("nope", &[], "unknown command"),
            ("show", &[], "takes one grant id"),
            ("show", &["a", "b"], "takes one grant id"),
            ("list", &["x"], "unexpected argument"),
            ("show", &["a/b"], "grant id \"a/b\""),
            ("show", &[".."], "grant id"),
            ("show", &["g", "--kv-mount", "a/../b"], "--kv-mount"),
            ("show", &["g", "--path-prefix", "../x/"], "--path-prefix"),
            ("create", &["--grant-id", "bad id"], "grant id \"bad id\""),
            (
                "create",
                &[
                    "--aws-role",
                    "r1",
                    "--access-key-id",
                    "AKIAIOSFODNN7EXAMPLE",
                ],
                "exclude each other",
            ),
            (
                "create",
                &["--aws-role", "r1", "--secret-access-key-stdin"],
                "exclude each other",
            ),
            ("create", &["--aws-mount", "aws"], "needs --aws-role"),
            ("create", &["--aws-role", "../x"], "--aws-role"),
            (
                "create",
                &["--aws-role", "r", "--credential-type", "x"],
                "--credential-type",
            ),
            (
                "create",
                &["--aws-role", "r", "--allow-regions", "EU"],
                "--allow-regions",
            ),
            (
                "create",
                &["--aws-role", "r", "--allow-methods", "FETCH"],
                "unknown method",
            ),
            (
                "create",
                &["--aws-role", "r", "--allow-source-cidrs", "10.0.0.0/40"],
                "--allow-source-cidrs",
            ),
            (
                "create",
                &["--aws-role", "r", "--description", "a\u{7}"],
                "--description",
            ),
            ("create", &["--access-key-id", "akia"], "--access-key-id"),
            ("policy", &["g"], "nothing to change"),
            (
                "policy",
                &["g", "--allow-services", "s3", "--clear-services"],
                "exclude each other",
            ),
            ("policy", &["g", "--allow-services", ""], "empty list"),
            (
                "rotate",
                &["g", "--aws-role", "r"],
                "unknown flag --aws-role",
            ),
        ];
        for (cmd, a, want) in cases {
            let m = usage_of(dispatch(cmd, &words(a)));
            assert!(m.contains(want), "{cmd} {a:?}: {m}");
        }
    }

    #[test]
    fn layout_paths() {
        let p = args::parse("show", &words(&["g"]), &SHOW).unwrap();
        let l = Layout::from_args(&p).unwrap();
        assert_eq!(l.data_path("g1"), "/v1/secret/data/aws/grants/g1");
        assert_eq!(l.metadata_path("g1"), "/v1/secret/metadata/aws/grants/g1");
        let p = args::parse(
            "show",
            &words(&["g", "--kv-mount=/kv/", "--path-prefix", "team/"]),
            &SHOW,
        )
        .unwrap();
        let l = Layout::from_args(&p).unwrap();
        assert_eq!(l.data_path("g1"), "/v1/kv/data/team/g1");
    }

    #[test]
    fn policy_flags_become_lists() {
        let p = args::parse(
            "create",
            &words(&[
                "--allow-services",
                "s3",
                "--allow-services",
                "sts,s3",
                "--allow-methods=get,head",
            ]),
            &CREATE,
        )
        .unwrap();
        let got = policy_from_flags(&p).unwrap();
        assert_eq!(
            got,
            vec![
                (
                    "allowed_services",
                    vec!["s3".to_string(), "sts".to_string()]
                ),
                (
                    "allowed_methods",
                    vec!["GET".to_string(), "HEAD".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn stored_lists() {
        assert_eq!(
            stored_list(&json!(["s3", "sts"])).unwrap(),
            vec!["s3", "sts"]
        );
        assert_eq!(stored_list(&json!("s3, sts")).unwrap(), vec!["s3", "sts"]);
        assert!(stored_list(&Value::Null).is_none());
    }
}
