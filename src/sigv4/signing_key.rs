//! The SigV4 signing key: derived from the secret, date, region and service with chained
//! HMACs, kept with its keyed HMAC state, and cached per inputs.

use hmac::digest::consts::U32;
use hmac::digest::{FixedOutput, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::hint::black_box;
use std::sync::Arc;

/// How many signing keys a [`SigningKeyCache`] holds before it is cleared.
pub const SIGNING_KEY_CACHE_CAPACITY: usize = 64;

/// HMAC-SHA256 (the `hmac` crate) keyed with the concatenation of `parts`. The keyed state
/// is `Clone`: a signing key keeps it, so each signature clones it and pays no key-block
/// compressions.
pub(super) fn keyed(parts: &[&[u8]]) -> HmacSha256 {
    // "AWS4" + secret: at most 4 + 128 bytes (vault::Credentials), copied to the stack and
    // overwritten; a longer secret is hashed first by HMAC itself.
    let mut buf = [0u8; 256];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mac = if total <= buf.len() {
        let mut at = 0;
        for p in parts {
            if let Some(dst) = buf.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        <HmacSha256 as KeyInit>::new_from_slice(buf.get(..total).unwrap_or(&[]))
    } else {
        let mut long = parts.concat();
        let mac = <HmacSha256 as KeyInit>::new_from_slice(&long);
        long.fill(0);
        black_box(&mut long);
        mac
    };
    buf = [0; 256];
    black_box(&mut buf);
    // HMAC takes a key of any length: this cannot fail.
    mac.unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()))
}

/// HMAC-SHA256 of `data` with the keyed state `key`.
pub(super) fn mac_with(key: &HmacSha256, data: &[u8]) -> [u8; 32] {
    let mut m = key.clone();
    m.update(data);
    m.finalize().into_bytes().into()
}

type HmacSha256 = Hmac<Sha256>;

/// A SigV4 signing key, ready to sign with: the 32 key bytes and the keyed HMAC state.
///
/// Cheap to clone (shared). `Debug` never prints the key; the key bytes and the HMAC state
/// are overwritten when the last clone is dropped.
#[derive(Clone)]
pub struct SigningKey(Arc<KeyMaterial>);

pub(super) struct KeyMaterial {
    bytes: [u8; 32],
    hmac: HmacSha256,
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes = [0; 32];
        // The keyed state is overwritten in place with that of an all-zero key.
        self.hmac = <HmacSha256 as KeyInit>::new(&Default::default());
        black_box(self);
    }
}

impl SigningKey {
    /// A signing key from its 32 bytes (as [`derive_signing_key`] returns them).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SigningKey(Arc::new(KeyMaterial {
            bytes: *bytes,
            hmac: keyed(&[bytes]),
        }))
    }

    /// Derive the signing key for (secret, date `YYYYMMDD`, region, service).
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> Self {
        let mut bytes = derive_signing_key(secret, date, region, service);
        let key = Self::from_bytes(&bytes);
        bytes = [0; 32];
        black_box(&mut bytes);
        key
    }

    /// The 32 key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0.bytes
    }

    /// HMAC-SHA256 of `data` with this key.
    pub(super) fn mac(&self, data: &[u8]) -> [u8; 32] {
        mac_with(&self.0.hmac, data)
    }

    /// [`mac`](Self::mac), reusing (and updating) `memo`'s keyed state after the first 64
    /// bytes when `data` starts with the same block.
    pub(super) fn mac_memoized(&self, data: &[u8], memo: &mut FirstBlockMemo) -> [u8; 32] {
        digest_memoized(&mut memo.0, || self.0.hmac.clone(), data)
    }
}

/// The digest of `data` by a state that `fresh` makes, reusing (and updating) the state kept
/// in `slot` after the first 64 bytes when `data` starts with the same block.
fn digest_memoized<D>(
    slot: &mut Option<([u8; 64], D)>,
    fresh: impl FnOnce() -> D,
    data: &[u8],
) -> [u8; 32]
where
    D: Clone + hmac::digest::Update + FixedOutput<OutputSize = U32>,
{
    let Some((head, tail)) = data.split_first_chunk::<64>() else {
        let mut d = fresh();
        hmac::digest::Update::update(&mut d, data);
        return d.finalize_fixed().into();
    };
    let mut d = match slot {
        Some((block, d)) if block == head => d.clone(),
        _ => {
            let mut d = fresh();
            hmac::digest::Update::update(&mut d, head);
            *slot = Some((*head, d.clone()));
            d
        }
    };
    hmac::digest::Update::update(&mut d, tail);
    d.finalize_fixed().into()
}

/// A signing key's keyed HMAC state after the first 64 bytes of the last message it signed,
/// with those bytes. A string to sign starts with the algorithm, the time to the second and
/// the scope: the requests of one second under one key share that block, so each of them
/// after the first saves one SHA-256 compression (3.4k instructions per GET in the wasm
/// module). Kept beside the key in a [`SigningKeyCache`]; wiped when dropped.
#[derive(Default)]
pub struct FirstBlockMemo(Option<([u8; 64], HmacSha256)>);

impl Drop for FirstBlockMemo {
    fn drop(&mut self) {
        if let Some((block, m)) = self.0.as_mut() {
            *block = [0; 64];
            *m = <HmacSha256 as KeyInit>::new(&Default::default());
        }
        black_box(self);
    }
}

/// The SHA-256 state after the first 64 bytes of the last canonical request hashed, with
/// those bytes. A canonical request starts with the method, the path, the query and the first
/// signed headers: consecutive requests of one kind (the same API call, POSTs to one JSON or
/// query API) share that block, and each of them after the first saves one SHA-256
/// compression (about 3.4k instructions in the wasm module). A miss costs a 64-byte compare.
/// It holds no secret (a canonical request is what the request itself says). It also keeps
/// the buffers of the last canonical request and string to sign, for the next signature to
/// reuse (the canonical request carries the session token of a temporary credential, which
/// the grant cache holds anyway).
#[derive(Default)]
pub struct CanonicalRequestMemo {
    first_block: Option<([u8; 64], Sha256)>,
    buffers: (String, String),
}

impl CanonicalRequestMemo {
    /// SHA-256 of `data`, reusing (and updating) the state after its first block.
    pub fn digest(&mut self, data: &[u8]) -> [u8; 32] {
        digest_memoized(&mut self.first_block, Sha256::new, data)
    }

    /// The kept buffers of the canonical request and the string to sign, moved out.
    pub(super) fn take_buffers(&mut self) -> (String, String) {
        std::mem::take(&mut self.buffers)
    }

    /// Keep these buffers for the next signature.
    pub(super) fn put_buffers(&mut self, canonical_request: String, string_to_sign: String) {
        self.buffers = (canonical_request, string_to_sign);
    }
}

impl From<[u8; 32]> for SigningKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

/// Derive the SigV4 signing key for (secret, date `YYYYMMDD`, region, service).
///
/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut key = mac_with(&keyed(&[b"AWS4", secret.as_bytes()]), date.as_bytes());
    for part in [region.as_bytes(), service.as_bytes(), b"aws4_request"] {
        // Each intermediate key is overwritten by the next one.
        key = mac_with(&keyed(&[&key]), part);
    }
    key
}

/// A cached signing key and the inputs it was derived from.
pub(super) struct CacheEntry {
    /// `date ‖ region ‖ service ‖ secret`, overwritten with zeros when dropped.
    id: Vec<u8>,
    /// Lengths of date, region and service in `id`.
    lens: [usize; 3],
    key: SigningKey,
    memo: FirstBlockMemo,
}

impl CacheEntry {
    fn is_for(&self, secret: &str, date: &str, region: &str, service: &str) -> bool {
        if self.lens != [date.len(), region.len(), service.len()] {
            return false;
        }
        let mut rest = self.id.as_slice();
        for part in [date, region, service, secret] {
            match rest.split_at_checked(part.len()) {
                Some((head, tail)) if head == part.as_bytes() => rest = tail,
                _ => return false,
            }
        }
        rest.is_empty()
    }
}

impl Drop for CacheEntry {
    fn drop(&mut self) {
        self.id.fill(0);
        black_box(&mut self.id);
    }
}

/// Caches signing keys per (secret, date, region, service), so that a warm signature costs
/// one SHA-256 of the canonical request and one HMAC of the string to sign, with the HMAC key
/// blocks already absorbed.
///
/// At most [`SIGNING_KEY_CACHE_CAPACITY`] entries; when full it is cleared (keys change daily,
/// so the working set is tiny). A lookup compares the inputs byte for byte (no hashing): the
/// cache holds a copy of each secret, overwritten with zeros (as are the keys) when an entry is
/// dropped. `Debug` prints only the entry count.
#[derive(Default)]
pub struct SigningKeyCache {
    entries: Vec<CacheEntry>,
    /// Beside the keys, for the canonical requests they sign (keyless).
    canonical: CanonicalRequestMemo,
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl SigningKeyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of cached signing keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forget every cached key (the entries overwrite their secret and key when dropped).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The signing key for these inputs, derived once and then reused.
    pub fn get(&mut self, secret: &str, date: &str, region: &str, service: &str) -> SigningKey {
        self.get_with_memo(secret, date, region, service).0
    }

    /// [`get`](Self::get), with the key's first-block memo and the canonical request memo.
    pub fn get_with_memo(
        &mut self,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> (
        SigningKey,
        Option<&mut FirstBlockMemo>,
        &mut CanonicalRequestMemo,
    ) {
        let found = self
            .entries
            .iter()
            .position(|e| e.is_for(secret, date, region, service));
        let i = match found {
            Some(i) => i,
            None => {
                if self.entries.len() >= SIGNING_KEY_CACHE_CAPACITY {
                    self.clear();
                }
                if self.entries.capacity() == 0 {
                    self.entries.reserve_exact(8);
                }
                // Exactly sized: the secret is never left behind by a reallocation.
                let mut id =
                    Vec::with_capacity(date.len() + region.len() + service.len() + secret.len());
                for part in [date, region, service, secret] {
                    id.extend_from_slice(part.as_bytes());
                }
                self.entries.push(CacheEntry {
                    id,
                    lens: [date.len(), region.len(), service.len()],
                    key: SigningKey::derive(secret, date, region, service),
                    memo: FirstBlockMemo::default(),
                });
                self.entries.len() - 1
            }
        };
        let canonical = &mut self.canonical;
        match self.entries.get_mut(i) {
            Some(e) => (e.key.clone(), Some(&mut e.memo), canonical),
            // Not reached: `i` is an index of `entries`.
            None => (
                SigningKey::derive(secret, date, region, service),
                None,
                canonical,
            ),
        }
    }
}
