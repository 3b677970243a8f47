//! grantctl: store, rotate, restrict, show, list and revoke grant-sigv4 grants in a
//! Vault-compatible store (Vault, OpenBao). See `grantctl --help`.
//!
//! Exit codes: 0 ok, 1 vault or network error (including "no such grant"), 2 usage or
//! validation error. No message ever holds the vault token, a secret access key or a
//! session token.

mod args;
mod cmd;
mod secrets;
mod validate;
mod vault;

use std::process::ExitCode;

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad command line or input: exit 2.
    Usage(String),
    /// The vault refused, failed or could not be reached: exit 1.
    Vault(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Vault(_) => 1,
        }
    }
}

pub const USAGE: &str = "\
grantctl: manage grant-sigv4 grants (AWS keys referenced by grant id) in Vault/OpenBao KV v2

Usage:
  grantctl create --access-key-id ID [--secret-access-key-stdin] [--session-token-stdin]
                  [--grant-id ID] [--description TEXT] [policy flags]
  grantctl create --aws-role ROLE [--aws-mount aws] [--credential-type creds|sts]
                  [--grant-id ID] [--description TEXT] [policy flags]
  grantctl rotate GRANT --access-key-id ID [--secret-access-key-stdin] [--session-token-stdin]
  grantctl policy GRANT [--allow-services s3,sts] [--allow-regions ...] [--allow-methods GET,HEAD]
                  [--allow-principals ...] [--allow-source-cidrs ...] [--clear-all] [--clear-...]
  grantctl show GRANT [--json]
  grantctl list
  grantctl revoke GRANT

Every command takes --kv-mount MOUNT (default secret) and --path-prefix PREFIX (default
aws/grants/): grant G is the KV v2 secret MOUNT/data/PREFIX+G.

Environment: VAULT_ADDR (or BAO_ADDR), VAULT_TOKEN (or BAO_TOKEN, else ~/.vault-token),
VAULT_NAMESPACE, VAULT_CACERT (PEM file of the CA that signed the vault's certificate).

Exit codes: 0 ok, 1 vault or network error (also \"no such grant\"), 2 usage or invalid input.
`grantctl COMMAND --help` tells more about one command.
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = match &e {
                CliError::Usage(m) | CliError::Vault(m) => m,
            };
            eprintln!("grantctl: {msg}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(argv: &[String]) -> Result<(), CliError> {
    let Some(first) = argv.first() else {
        eprint!("{USAGE}");
        return Err(CliError::Usage("no command given".into()));
    };
    let rest = &argv[1..];
    match first.as_str() {
        "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        "help" => match rest.first() {
            None => {
                print!("{USAGE}");
                Ok(())
            }
            Some(c) => match cmd::help(c) {
                Some(h) => {
                    print!("{h}");
                    Ok(())
                }
                None => Err(CliError::Usage(format!("unknown command {c:?}"))),
            },
        },
        c => cmd::dispatch(c, rest),
    }
}
