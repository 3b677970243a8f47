//! The SigV4 signing key: derived from the secret, date, region and service with chained
//! HMACs, kept with its keyed HMAC state, and cached per inputs.

use sha2::{Digest, Sha256};
use std::fmt;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

/// How many signing keys a [`SigningKeyCache`] holds before it is cleared.
pub const SIGNING_KEY_CACHE_CAPACITY: usize = 64;

/// HMAC-SHA256 with its key set: the SHA-256 states after the inner (`key ^ ipad`) and outer
/// (`key ^ opad`) key blocks. Each MAC clones them, so a reused key costs no key-block
/// compressions. Overwritten with the initial SHA-256 state when dropped.
pub(super) struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl HmacKey {
    /// The HMAC key that is the concatenation of `parts`.
    ///
    /// HMAC pads a key up to the block size (64 bytes) with zeros and first hashes a longer
    /// key, so this is exactly HMAC and needs no allocation (for `"AWS4" + secret`).
    pub(super) fn new(parts: &[&[u8]]) -> Self {
        let mut block = [0u8; 64];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > block.len() {
            let mut h = Sha256::new();
            for p in parts {
                h.update(p);
            }
            for (dst, src) in block.iter_mut().zip(h.finalize().iter()) {
                *dst = *src;
            }
        } else {
            let mut dst = block.iter_mut();
            for p in parts {
                // `p` first: `zip` must not pull (and lose) a block byte once `p` is exhausted.
                for (s, d) in p.iter().zip(dst.by_ref()) {
                    *d = *s;
                }
            }
        }
        let mut pad = [0u8; 64];
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x36;
        }
        let mut inner = Sha256::new();
        inner.update(pad);
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x5c;
        }
        let mut outer = Sha256::new();
        outer.update(pad);
        pad = [0; 64];
        block = [0; 64];
        black_box((&mut pad, &mut block));
        HmacKey { inner, outer }
    }

    /// HMAC-SHA256 of `data`.
    pub(super) fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(data);
        self.finish(inner)
    }

    /// The HMAC whose keyed inner hash `inner` has absorbed the whole message.
    fn finish(&self, inner: Sha256) -> [u8; 32] {
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.inner = Sha256::new();
        self.outer = Sha256::new();
        black_box(self);
    }
}

/// A SigV4 signing key, ready to sign with: the 32 key bytes and the keyed HMAC state.
///
/// Cheap to clone (shared). `Debug` never prints the key; the key bytes and the HMAC state
/// are overwritten when the last clone is dropped.
#[derive(Clone)]
pub struct SigningKey(Arc<KeyMaterial>);

pub(super) struct KeyMaterial {
    bytes: [u8; 32],
    hmac: HmacKey,
    /// The keyed inner hash after the first 64 bytes of the last message signed, with those
    /// bytes. A string to sign starts with the algorithm, the time to the second and the
    /// scope: the requests of one second under one key share that block, so each of them
    /// after the first saves one SHA-256 compression.
    first_block: Mutex<Option<([u8; 64], Sha256)>>,
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes = [0; 32];
        black_box(&mut self.bytes);
        if let Ok(cached) = self.first_block.get_mut() {
            if let Some((_, state)) = cached.as_mut() {
                *state = Sha256::new();
            }
            *cached = None;
        }
    }
}

impl SigningKey {
    /// A signing key from its 32 bytes (as [`derive_signing_key`] returns them).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SigningKey(Arc::new(KeyMaterial {
            bytes: *bytes,
            hmac: HmacKey::new(&[bytes]),
            first_block: Mutex::new(None),
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
        let hmac = &self.0.hmac;
        let Some((head, tail)) = data.split_first_chunk::<64>() else {
            return hmac.mac(data);
        };
        let absorb_head = || {
            let mut state = hmac.inner.clone();
            state.update(head);
            state
        };
        let mut inner = match self.0.first_block.lock() {
            Ok(mut cached) => match cached.as_ref() {
                Some((h, state)) if h == head => state.clone(),
                _ => {
                    let state = absorb_head();
                    *cached = Some((*head, state.clone()));
                    state
                }
            },
            Err(_) => absorb_head(),
        };
        inner.update(tail);
        hmac.finish(inner)
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
    let mut key = HmacKey::new(&[b"AWS4", secret.as_bytes()]).mac(date.as_bytes());
    for part in [region.as_bytes(), service.as_bytes(), b"aws4_request"] {
        // Each intermediate key is overwritten by the next one.
        key = HmacKey::new(&[&key]).mac(part);
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
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.is_for(secret, date, region, service))
        {
            return e.key.clone();
        }
        if self.entries.len() >= SIGNING_KEY_CACHE_CAPACITY {
            self.clear();
        }
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(8);
        }
        // Exactly sized: the secret is never left behind by a reallocation.
        let mut id = Vec::with_capacity(date.len() + region.len() + service.len() + secret.len());
        for part in [date, region, service, secret] {
            id.extend_from_slice(part.as_bytes());
        }
        let key = SigningKey::derive(secret, date, region, service);
        self.entries.push(CacheEntry {
            id,
            lens: [date.len(), region.len(), service.len()],
            key: key.clone(),
        });
        key
    }
}
