//! The filter's Vault token from the host (`vault.token_sds`): the dynamic module reads it
//! from Envoy's SDS and hands each new value in; a proxy-wasm host cannot, so the engine
//! refuses the key unless its host said it can ([`Engine::vault_token_from_host`]).

use super::vault_token::VaultToken;
use super::{Engine, Host};
use crate::config::{AuthMethod, Config, ConfigError};
use log::info;
use std::rc::Rc;

impl Engine {
    /// The host reads `vault.token_sds` and hands its value in ([`Engine::replace_vault_token`]).
    pub fn vault_token_from_host(&mut self) {
        self.token_from_host = true;
    }

    /// Why `cfg` cannot run on this host, if it cannot.
    pub(super) fn host_refuses(&self, cfg: &Config) -> Option<ConfigError> {
        (cfg.vault.token_sds.is_some() && !self.token_from_host).then(|| ConfigError {
            key: String::from("vault.token_sds"),
            problem: String::from(
                "needs the dynamic module: a proxy-wasm filter cannot read Envoy's SDS \
                 secrets (use vault.token_env, vault.auth.method \"approle\" or \"proxy\")",
            ),
        })
    }

    /// The filter's vault token (`vault.token_sds`) has a new value: it is sent from now on,
    /// and its life starts over (looked up at the next tick, renewed if renewable). Returns
    /// false when the engine does not take its token from the host.
    pub fn replace_vault_token(&mut self, host: &mut impl Host, token: &str) -> bool {
        let Some(cfg) = self.config.as_deref() else {
            return false;
        };
        if cfg.vault.token_sds.is_none() || cfg.vault.auth != AuthMethod::Token {
            return false;
        }
        if cfg.vault.token == token {
            return true;
        }
        let mut cfg = cfg.clone();
        let first = cfg.vault.token.is_empty();
        cfg.vault.token = token.to_string();
        let passive = self.auth.passive;
        self.auth = VaultToken::configure(host, &cfg);
        self.auth.passive = passive;
        self.config = Some(Rc::new(cfg));
        if !first {
            info!("grant-sigv4: the vault token from SDS changed: it is used from now on");
        }
        true
    }

    /// The vault token the engine sends (for the host's comparison; empty: none yet).
    pub fn vault_token_is(&self, token: &str) -> bool {
        self.config
            .as_deref()
            .is_some_and(|c| c.vault.token == token)
    }
}
