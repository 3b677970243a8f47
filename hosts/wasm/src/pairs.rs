//! Header maps as the proxy-wasm ABI serializes them.

/// Serialize pairs the way the ABI wants a header map.
pub fn serialize_pairs(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parse a serialized header map into views of `bytes`. Malformed input (or a name that is
/// not UTF-8, which Envoy's codecs never pass on) gives `None`, never a panic.
pub fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    fn u32_at(b: &[u8], at: usize) -> Option<usize> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let n = u32_at(bytes, 0)?;
    let mut sizes_at = 4usize;
    let mut data_at = 4usize.checked_add(n.checked_mul(8)?)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let klen = u32_at(bytes, sizes_at)?;
        let vlen = u32_at(bytes, sizes_at + 4)?;
        sizes_at += 8;
        let key = bytes.get(data_at..data_at.checked_add(klen)?)?;
        data_at = data_at.checked_add(klen)?.checked_add(1)?;
        let value = bytes.get(data_at..data_at.checked_add(vlen)?)?;
        data_at = data_at.checked_add(vlen)?.checked_add(1)?;
        out.push((std::str::from_utf8(key).ok()?, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs: [(&str, &[u8]); 3] = [(":method", b"GET"), ("x-a", b""), ("x-b", b"\xff\x00v")];
        let bytes = serialize_pairs(&pairs);
        let back = deserialize_pairs(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], (":method", &b"GET"[..]));
        assert_eq!(back[2].1, b"\xff\x00v");
        // A name that is not UTF-8 is refused, not replaced.
        assert_eq!(
            deserialize_pairs(
                &serialize_pairs(&[("a", b"v")])
                    .iter()
                    .map(|&b| if b == b'a' { 0xff } else { b })
                    .collect::<Vec<_>>()
            ),
            None
        );
    }

    #[test]
    fn malformed_maps_do_not_panic() {
        assert_eq!(deserialize_pairs(&[]), Some(vec![]));
        assert_eq!(deserialize_pairs(&[1, 0, 0]), None);
        assert_eq!(deserialize_pairs(&[255, 255, 255, 255]), None);
        let mut b = serialize_pairs(&[("k", b"v")]);
        b.truncate(b.len() - 2);
        assert_eq!(deserialize_pairs(&b), None);
    }
}
