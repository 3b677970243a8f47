//! Where a secret access key and session token come from (stdin, environment, or a
//! discouraged flag), and random grant ids.

use crate::args::Parsed;
use crate::validate;
use crate::CliError;
use std::io::{BufRead, IsTerminal, Read};

/// The static key given to `create` or `rotate`.
#[derive(Debug, PartialEq, Eq)]
pub struct StaticKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Flags naming a static key (any of them makes a grant static).
pub const STATIC_FLAGS: [&str; 5] = [
    "access-key-id",
    "secret-access-key",
    "secret-access-key-stdin",
    "session-token",
    "session-token-stdin",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Stdin,
    Flag,
    Env,
}

/// Decide where the secret and the session token come from (nothing is read yet).
/// `env_secret`/`env_akid`/`env_token`: AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID,
/// AWS_SESSION_TOKEN as set (passed in for tests).
pub fn plan(
    p: &Parsed,
    akid: &str,
    env_secret: bool,
    env_akid: Option<&str>,
    env_token: bool,
) -> Result<(From, Option<From>), CliError> {
    let secret = match (
        p.switch("secret-access-key-stdin"),
        p.value("secret-access-key").is_some(),
    ) {
        (true, true) => {
            return Err(CliError::Usage(
                "give the secret once: --secret-access-key-stdin or --secret-access-key".into(),
            ))
        }
        (true, false) => From::Stdin,
        (false, true) => From::Flag,
        (false, false) if env_secret => {
            if let Some(env_akid) = env_akid {
                if env_akid != akid {
                    return Err(CliError::Usage(
                        "AWS_SECRET_ACCESS_KEY in the environment belongs to another \
                         AWS_ACCESS_KEY_ID than --access-key-id: pass the secret with \
                         --secret-access-key-stdin"
                            .into(),
                    ));
                }
            }
            From::Env
        }
        (false, false) => {
            return Err(CliError::Usage(
                "missing secret: give --secret-access-key-stdin (and pipe the secret in), or \
                 set AWS_SECRET_ACCESS_KEY"
                    .into(),
            ))
        }
    };
    let token = match (
        p.switch("session-token-stdin"),
        p.value("session-token").is_some(),
    ) {
        (true, true) => {
            return Err(CliError::Usage(
                "give the session token once: --session-token-stdin or --session-token".into(),
            ))
        }
        (true, false) => Some(From::Stdin),
        (false, true) => Some(From::Flag),
        // The environment's session token goes with the environment's secret only.
        (false, false) if secret == From::Env && env_token => Some(From::Env),
        (false, false) => None,
    };
    Ok((secret, token))
}

/// Split piped stdin into exactly `n` lines (a trailing newline and `\r` are dropped).
pub fn split_stdin(text: &str, names: &[&str]) -> Result<Vec<String>, CliError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if lines.len() > names.len() {
        return Err(CliError::Usage(format!(
            "stdin holds {} lines; expected {} ({})",
            lines.len(),
            names.len(),
            names.join(", then ")
        )));
    }
    if let Some(missing) = names.get(lines.len()) {
        return Err(CliError::Usage(format!(
            "stdin ended before the {missing} (expected {}, one per line)",
            names.join(", then ")
        )));
    }
    Ok(lines)
}

/// Run `stty` on the terminal; false if it could not.
fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn read_stdin(names: &[&str]) -> Result<Vec<String>, CliError> {
    let stdin = std::io::stdin();
    let io_err = |e: std::io::Error| CliError::Usage(format!("cannot read stdin: {e}"));
    if !stdin.is_terminal() {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).map_err(io_err)?;
        return split_stdin(&text, names);
    }
    let hidden = stty("-echo");
    let mut out = Vec::new();
    let mut result = Ok(());
    for name in names {
        eprint!(
            "{name}{}: ",
            if hidden { "" } else { " (input is visible)" }
        );
        let mut line = String::new();
        if let Err(e) = stdin.lock().read_line(&mut line) {
            result = Err(io_err(e));
            break;
        }
        if hidden {
            eprintln!();
        }
        out.push(line.trim_end_matches(['\n', '\r']).to_string());
    }
    if hidden {
        stty("echo");
    }
    result.map(|()| out)
}

/// Gather and check the static key for `create`/`rotate`.
pub fn static_key(p: &Parsed) -> Result<StaticKey, CliError> {
    let akid = p.value("access-key-id").ok_or_else(|| {
        CliError::Usage("missing --access-key-id (or --aws-role for a dynamic grant)".into())
    })?;
    validate::access_key_id(akid).map_err(CliError::Usage)?;
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let (secret_from, token_from) = plan(
        p,
        akid,
        env("AWS_SECRET_ACCESS_KEY").is_some(),
        env("AWS_ACCESS_KEY_ID").as_deref(),
        env("AWS_SESSION_TOKEN").is_some(),
    )?;
    if secret_from == From::Flag {
        eprintln!(
            "grantctl: warning: --secret-access-key leaves the secret in shell history and the \
             process list; prefer --secret-access-key-stdin"
        );
    }
    if token_from == Some(From::Flag) {
        eprintln!(
            "grantctl: warning: --session-token leaves the token in shell history and the \
             process list; prefer --session-token-stdin"
        );
    }
    let mut stdin_names = Vec::new();
    if secret_from == From::Stdin {
        stdin_names.push("secret access key");
    }
    if token_from == Some(From::Stdin) {
        stdin_names.push("session token");
    }
    let mut from_stdin = if stdin_names.is_empty() {
        Vec::new()
    } else {
        read_stdin(&stdin_names)?
    }
    .into_iter();
    let mut take = |from: From, flag: &str, env_name: &str| -> String {
        match from {
            From::Stdin => from_stdin.next().unwrap_or_default(),
            From::Flag => p.value(flag).unwrap_or_default().to_string(),
            From::Env => env(env_name).unwrap_or_default(),
        }
    };
    let secret = take(secret_from, "secret-access-key", "AWS_SECRET_ACCESS_KEY");
    let token = token_from.map(|f| take(f, "session-token", "AWS_SESSION_TOKEN"));
    validate::secret_access_key(&secret).map_err(CliError::Usage)?;
    if let Some(t) = &token {
        validate::session_token(t).map_err(CliError::Usage)?;
    }
    if token.is_none() && akid.starts_with("ASIA") {
        eprintln!(
            "grantctl: warning: an ASIA... access key id is temporary and needs its session \
             token (--session-token-stdin)"
        );
    }
    Ok(StaticKey {
        access_key_id: akid.to_string(),
        secret_access_key: secret,
        session_token: token,
    })
}

/// RFC 4648 base32, lower case, no padding.
pub fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A fresh grant id: `g-` and 128 random bits in base32 (26 characters).
pub fn new_grant_id() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::Vault(format!("cannot read /dev/urandom for a grant id: {e}")))?;
    Ok(format!("g-{}", base32_lower(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Spec};

    const SPEC: Spec = Spec {
        values: &["access-key-id", "secret-access-key", "session-token"],
        repeatable: &[],
        switches: &["secret-access-key-stdin", "session-token-stdin"],
    };
    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";

    fn parsed(a: &[&str]) -> Parsed {
        let words: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        parse("create", &words, &SPEC).unwrap()
    }

    fn usage(r: Result<(From, Option<From>), CliError>) -> String {
        match r {
            Err(CliError::Usage(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_sources() {
        let p = parsed(&["--secret-access-key-stdin"]);
        assert_eq!(
            plan(&p, AKID, true, None, true).unwrap(),
            (From::Stdin, None)
        );
        let p = parsed(&["--secret-access-key", "s"]);
        assert_eq!(
            plan(&p, AKID, false, None, false).unwrap(),
            (From::Flag, None)
        );
        let p = parsed(&[]);
        assert_eq!(
            plan(&p, AKID, true, None, false).unwrap(),
            (From::Env, None)
        );
        assert_eq!(
            plan(&p, AKID, true, Some(AKID), true).unwrap(),
            (From::Env, Some(From::Env))
        );
        assert!(usage(plan(&p, AKID, false, None, false)).starts_with("missing secret"));
        // The operator's own key in the environment is not silently paired with another id.
        assert!(usage(plan(&p, AKID, true, Some("AKIAOTHER0000000"), false))
            .contains("another AWS_ACCESS_KEY_ID"));
        let p = parsed(&["--secret-access-key-stdin", "--secret-access-key", "s"]);
        assert!(usage(plan(&p, AKID, false, None, false)).contains("once"));
    }

    #[test]
    fn token_sources() {
        let p = parsed(&["--secret-access-key-stdin", "--session-token-stdin"]);
        assert_eq!(
            plan(&p, AKID, false, None, false).unwrap(),
            (From::Stdin, Some(From::Stdin))
        );
        let p = parsed(&["--secret-access-key-stdin", "--session-token", "t"]);
        assert_eq!(
            plan(&p, AKID, false, None, true).unwrap(),
            (From::Stdin, Some(From::Flag))
        );
        // The environment's token is not taken with a secret from elsewhere.
        let p = parsed(&["--secret-access-key-stdin"]);
        assert_eq!(
            plan(&p, AKID, false, None, true).unwrap(),
            (From::Stdin, None)
        );
    }

    #[test]
    fn stdin_lines() {
        assert_eq!(
            split_stdin("s3cr3t\n", &["secret"]).unwrap(),
            vec!["s3cr3t"]
        );
        assert_eq!(split_stdin("s3cr3t", &["secret"]).unwrap(), vec!["s3cr3t"]);
        assert_eq!(split_stdin("s\r\n", &["secret"]).unwrap(), vec!["s"]);
        assert_eq!(
            split_stdin("s\nt\n", &["secret", "token"]).unwrap(),
            vec!["s", "t"]
        );
        assert_eq!(split_stdin("", &["secret"]).unwrap(), vec![""]);
        let e = format!(
            "{:?}",
            split_stdin("s\n", &["secret", "token"]).unwrap_err()
        );
        assert!(e.contains("ended before the token"), "{e}");
        let e = format!("{:?}", split_stdin("s\nx\n", &["secret"]).unwrap_err());
        assert!(e.contains("2 lines"), "{e}");
        assert!(!e.contains("\"x\""), "{e}");
    }

    #[test]
    fn base32() {
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower(&[0xff; 16]).len(), 26);
    }

    #[test]
    fn grant_ids_are_fresh_and_valid() {
        let a = new_grant_id().unwrap();
        let b = new_grant_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a.starts_with("g-"));
        assert!(validate::grant_id(&a).is_ok());
    }
}
