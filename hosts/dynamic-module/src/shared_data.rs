//! The data shared by all workers of the process (the engine's `get_shared` / `set_shared`),
//! with the compare-and-set semantics of proxy-wasm's shared data, on which the engine's
//! cross-worker coordination is built: every write gives the value a new, process-unique,
//! non-zero token; a write with token 0 is unconditional, any other is refused unless the
//! value still has that token.
//!
//! A module is loaded once per process, so one static map serves every worker. Keys are
//! prefixed by the filter configuration's namespace: two configurations never read each
//! other's entries.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Most entries kept; past this, writes of new keys are refused (the engine then works from
/// its worker's cache alone).
const MAX_ENTRIES: usize = 65_536;

#[derive(Default)]
struct Shared {
    map: HashMap<String, (Vec<u8>, u32)>,
    last_token: u32,
}

fn shared() -> &'static Mutex<Shared> {
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    SHARED.get_or_init(Mutex::default)
}

fn with<R>(f: impl FnOnce(&mut Shared) -> R) -> R {
    // Every update is one insert, so a map whose lock was poisoned (a panic elsewhere while
    // it was held) is still consistent: use it as it is.
    let mut g = shared().lock().unwrap_or_else(|e| e.into_inner());
    f(&mut g)
}

/// The value of `key` and its token.
pub fn get(key: &str) -> Option<(Vec<u8>, u32)> {
    with(|s| s.map.get(key).cloned())
}

/// Write `value` under `key` if `cas` is 0 or still the value's token.
pub fn set(key: &str, value: &[u8], cas: u32) -> Result<(), String> {
    with(|s| {
        let token = s.last_token.checked_add(1).unwrap_or(1);
        match s.map.get_mut(key) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Err(String::from("CAS mismatch"));
                }
                entry.0.clear();
                entry.0.extend_from_slice(value);
                entry.1 = token;
            }
            None => {
                if s.map.len() >= MAX_ENTRIES {
                    return Err(String::from("shared data full"));
                }
                s.map.insert(key.to_string(), (value.to_vec(), token));
            }
        }
        s.last_token = token;
        Ok(())
    })
}
