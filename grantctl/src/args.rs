//! A small command-line parser: positionals, `--flag VALUE`, `--flag=VALUE`, switches,
//! `--` to end the flags, and `-h`/`--help`.

use crate::CliError;

/// The flags one command accepts (names without the leading `--`).
pub struct Spec {
    /// Flags that take a value.
    pub values: &'static [&'static str],
    /// Of `values`, those that may be given more than once (their values add up).
    pub repeatable: &'static [&'static str],
    /// Flags without a value.
    pub switches: &'static [&'static str],
}

/// Flags every command takes.
pub const GLOBAL_VALUES: &[&str] = &["kv-mount", "path-prefix"];

#[derive(Debug, Default)]
pub struct Parsed {
    pub positionals: Vec<String>,
    values: Vec<(String, String)>,
    switches: Vec<String>,
    pub help: bool,
}

impl Parsed {
    /// The value of a flag given at most once.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a repeatable flag, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name) || self.values.iter().any(|(n, _)| n == name)
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// Parse `args` (the words after the command name) against `spec` plus the global flags.
pub fn parse(cmd: &str, args: &[String], spec: &Spec) -> Result<Parsed, CliError> {
    let usage = |msg: String| CliError::Usage(format!("{msg} (see `grantctl {cmd} --help`)"));
    let mut out = Parsed::default();
    let mut i = 0;
    let mut flags_done = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if flags_done || arg == "-" || !arg.starts_with('-') {
            out.positionals.push(arg.clone());
            continue;
        }
        if arg == "--" {
            flags_done = true;
            continue;
        }
        if arg == "-h" || arg == "--help" {
            out.help = true;
            continue;
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(usage(format!("unknown flag {arg:?}")));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if spec.switches.contains(&name) {
            if inline.is_some() {
                return Err(usage(format!("--{name} takes no value")));
            }
            if out.switches.iter().any(|s| s == name) {
                return Err(usage(format!("--{name} is given twice")));
            }
            out.switches.push(name.to_string());
            continue;
        }
        if !(spec.values.contains(&name) || GLOBAL_VALUES.contains(&name)) {
            return Err(usage(format!("unknown flag --{name}")));
        }
        let value = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) if !v.starts_with("--") => {
                    i += 1;
                    v.clone()
                }
                _ => {
                    return Err(usage(format!(
                        "--{name} needs a value (write --{name}=VALUE for a value starting with --)"
                    )))
                }
            },
        };
        if !spec.repeatable.contains(&name) && out.values.iter().any(|(n, _)| n == name) {
            return Err(usage(format!("--{name} is given twice")));
        }
        out.values.push((name.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        values: &["access-key-id", "allow-services", "description"],
        repeatable: &["allow-services"],
        switches: &["json", "secret-access-key-stdin"],
    };

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn values_switches_and_positionals() {
        let p = parse(
            "create",
            &words(&[
                "g1",
                "--access-key-id",
                "AKIA",
                "--json",
                "--description=a b",
                "--kv-mount",
                "kv",
            ]),
            &SPEC,
        )
        .unwrap();
        assert_eq!(p.positionals, vec!["g1"]);
        assert_eq!(p.value("access-key-id"), Some("AKIA"));
        assert_eq!(p.value("description"), Some("a b"));
        assert_eq!(p.value("kv-mount"), Some("kv"));
        assert!(p.switch("json"));
        assert!(!p.switch("secret-access-key-stdin"));
        assert!(p.has("access-key-id"));
        assert!(!p.help);
    }

    #[test]
    fn repeatable_values_add_up() {
        let p = parse(
            "policy",
            &words(&["--allow-services", "s3", "--allow-services=sts"]),
            &SPEC,
        )
        .unwrap();
        assert_eq!(p.values("allow-services"), vec!["s3", "sts"]);
    }

    #[test]
    fn help_anywhere() {
        assert!(
            parse("create", &words(&["--json", "-h"]), &SPEC)
                .unwrap()
                .help
        );
        assert!(parse("create", &words(&["--help"]), &SPEC).unwrap().help);
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = parse("show", &words(&["--", "--json"]), &SPEC).unwrap();
        assert_eq!(p.positionals, vec!["--json"]);
        assert!(!p.switch("json"));
    }

    #[test]
    fn refusals_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--nope"], "unknown flag --nope"),
            (&["-x"], "unknown flag \"-x\""),
            (&["--json=1"], "--json takes no value"),
            (&["--json", "--json"], "--json is given twice"),
            (&["--access-key-id"], "--access-key-id needs a value"),
            (
                &["--access-key-id", "--json"],
                "--access-key-id needs a value",
            ),
            (
                &["--description", "a", "--description", "b"],
                "--description is given twice",
            ),
        ];
        for (args, want) in cases {
            match parse("create", &words(args), &SPEC) {
                Err(CliError::Usage(m)) => assert!(m.contains(want), "{args:?}: {m}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn value_may_start_with_dash_when_inline() {
        let p = parse("create", &words(&["--description=--odd"]), &SPEC).unwrap();
        assert_eq!(p.value("description"), Some("--odd"));
        let p = parse("create", &words(&["--description", "-1"]), &SPEC).unwrap();
        assert_eq!(p.value("description"), Some("-1"));
    }
}
