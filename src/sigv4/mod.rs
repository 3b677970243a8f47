//! AWS Signature Version 4: canonical request, string to sign, signing key, `Authorization`.
//!
//! Pure Rust, no proxy-wasm types, and panic-free on any input: this runs inside Envoy, where a
//! panic kills the Wasm VM. Every malformed input is reported as a [`SigV4Error`].
//!
//! The canonical request follows
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>:
//!
//! ```text
//! METHOD \n CANONICAL_URI \n CANONICAL_QUERY \n CANONICAL_HEADERS \n SIGNED_HEADERS \n PAYLOAD_HASH
//! ```
//!
//! * **URI** — see [`UriRules`]. `Default` normalizes `.`/`..` segments and repeated slashes
//!   and then percent-encodes the (already encoded) path once more, so `%3A` becomes `%253A`
//!   ("double encoding", what AWS does for every service but S3). `S3` takes the path as
//!   received, decodes it and encodes it exactly once, so an already canonical path is unchanged.
//! * **Query** — split on `&` (empty pieces are dropped), each piece split on the first `=`
//!   (a piece without `=` has an empty value and is written `k=`), key and value
//!   percent-decoded and re-encoded with the AWS rules (only `A-Za-z0-9-_.~` kept, everything
//!   else `%XX` uppercase), then sorted by encoded key, then encoded value.
//!   **A raw `+` in the query is a space**: it is decoded as in
//!   `application/x-www-form-urlencoded` and therefore canonicalized as `%20`, while a literal
//!   plus arrives as `%2B` and stays `%2B`. That is what the `aws-sigv4` crate (the Rust SDK's
//!   signer, our test oracle) does — it parses the query with `form_urlencoded::parse` — and it is
//!   how AWS services read query strings; SDKs never send a raw `+` for a plus sign.
//! * **Headers** — names lowercased and sorted, values with leading/trailing spaces removed and
//!   runs of spaces collapsed to one (only the space character, as `aws-sigv4` does; tabs are
//!   kept), repeated names joined with `,` in the order given.
//!
//! A warm signature costs the SHA-256 of the canonical request and one HMAC of the string to
//! sign, whose key blocks are already absorbed: the [`SigningKey`] (four chained HMACs, then
//! the keyed HMAC state) comes from a [`SigningKeyCache`].

mod canonical_request;
mod date;
mod encoding;
mod error;
mod signing_key;

pub use canonical_request::{is_token, s3_forwarded_path, SigningInput, UriRules};
pub use date::{format_amz_date, push_amz_date};
pub use encoding::sha256_hex;
pub use error::SigV4Error;
pub use signing_key::{
    derive_signing_key, CanonicalRequestMemo, FirstBlockMemo, SigningKey, SigningKeyCache,
    SIGNING_KEY_CACHE_CAPACITY,
};

use canonical_request::{build_canonical_request, build_canonical_request_into};
use date::date_of;
use encoding::push_hex32;
use sha2::{Digest, Sha256};

/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Payload hash token for requests whose body is not signed (S3).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The SigV4 algorithm name, first line of the string to sign and of `Authorization`.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The result of signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// `host;x-amz-date;...`
    pub signed_headers: String,
    /// Lowercase hex signature.
    pub signature: String,
    /// The full `Authorization` header value.
    pub authorization: String,
}

/// Region, service and access key id go verbatim into the credential scope and
/// `Authorization`: they must not be able to inject `/`, `,`, spaces or line breaks.
fn is_scope_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The canonical request of `input` and its signed header list (`host;x-amz-date;...`),
/// without signing (for diagnostics and tests; [`sign`] calls it).
pub fn canonical_request(input: &SigningInput<'_>) -> Result<(String, String), SigV4Error> {
    let (creq, signed) = build_canonical_request(input)?;
    let signed = creq.get(signed).unwrap_or("").to_owned();
    Ok((creq, signed))
}

/// Sign `input` with a signing key (from a [`SigningKeyCache`], [`SigningKey::derive`] or
/// [`SigningKey::from_bytes`]).
pub fn sign(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &SigningKey,
) -> Result<Signed, SigV4Error> {
    sign_memoized(input, access_key_id, signing_key, None, None)
}

/// [`sign`], with the memos from [`SigningKeyCache::get_with_memo`]: the key's first block of
/// the string to sign, and the first block of the canonical request.
pub fn sign_memoized(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &SigningKey,
    memo: Option<&mut FirstBlockMemo>,
    canonical_memo: Option<&mut CanonicalRequestMemo>,
) -> Result<Signed, SigV4Error> {
    let (mut canonical_request, mut string_to_sign) = (String::new(), String::new());
    let mut authorization = String::new();
    let parts = sign_into(
        input,
        access_key_id,
        signing_key,
        memo,
        canonical_memo,
        Buffers {
            canonical_request: &mut canonical_request,
            string_to_sign: &mut string_to_sign,
            authorization: &mut authorization,
        },
    )?;
    let signed_headers = canonical_request
        .get(parts.signed_range)
        .unwrap_or("")
        .to_owned();
    let signature = authorization
        .get(parts.signature_start..)
        .unwrap_or("")
        .to_owned();
    Ok(Signed {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
        authorization,
    })
}

/// [`sign_memoized`] for the `Authorization` value alone, written into `authorization`
/// (cleared first; its buffer is reused). The canonical request and the string to sign are
/// built in buffers the canonical request memo keeps between requests, when there is one.
pub fn authorization_memoized(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &SigningKey,
    memo: Option<&mut FirstBlockMemo>,
    canonical_memo: Option<&mut CanonicalRequestMemo>,
    authorization: &mut String,
) -> Result<(), SigV4Error> {
    let Some(m) = canonical_memo else {
        let buffers = Buffers {
            canonical_request: &mut String::new(),
            string_to_sign: &mut String::new(),
            authorization,
        };
        return sign_into(input, access_key_id, signing_key, memo, None, buffers).map(|_| ());
    };
    // Moved out and back (no copy): the memo also hashes the canonical request.
    let (mut canonical_request, mut string_to_sign) = m.take_buffers();
    let buffers = Buffers {
        canonical_request: &mut canonical_request,
        string_to_sign: &mut string_to_sign,
        authorization,
    };
    let signed = sign_into(
        input,
        access_key_id,
        signing_key,
        memo,
        Some(&mut *m),
        buffers,
    );
    m.put_buffers(canonical_request, string_to_sign);
    signed.map(|_| ())
}

/// Where [`sign_into`] writes (each cleared first).
struct Buffers<'a> {
    canonical_request: &'a mut String,
    string_to_sign: &'a mut String,
    authorization: &'a mut String,
}

/// What [`sign_into`] built on the way to the `Authorization` value.
struct Parts {
    /// Where the signed header names are in the canonical request.
    signed_range: std::ops::Range<usize>,
    /// Where the signature starts in the `Authorization` value.
    signature_start: usize,
}

fn sign_into(
    input: &SigningInput<'_>,
    access_key_id: &str,
    signing_key: &SigningKey,
    memo: Option<&mut FirstBlockMemo>,
    canonical_memo: Option<&mut CanonicalRequestMemo>,
    buffers: Buffers<'_>,
) -> Result<Parts, SigV4Error> {
    let Buffers {
        canonical_request,
        string_to_sign,
        authorization,
    } = buffers;
    let date = date_of(input.amz_date)?;
    if !is_scope_part(input.region) || !is_scope_part(input.service) {
        return Err(SigV4Error::BadHeader("host".to_owned()));
    }
    if !is_scope_part(access_key_id) {
        return Err(SigV4Error::BadHeader("authorization".to_owned()));
    }
    canonical_request.clear();
    let signed_range = build_canonical_request_into(input, canonical_request)?;
    let signed_headers = canonical_request.get(signed_range.clone()).unwrap_or("");

    // <date>/<region>/<service>/aws4_request
    let scope_len = date.len() + input.region.len() + input.service.len() + 15;
    string_to_sign.clear();
    string_to_sign.reserve(ALGORITHM.len() + input.amz_date.len() + scope_len + 64 + 3);
    string_to_sign.push_str(ALGORITHM);
    string_to_sign.push('\n');
    string_to_sign.push_str(input.amz_date);
    string_to_sign.push('\n');
    let scope_start = string_to_sign.len();
    string_to_sign.push_str(date);
    string_to_sign.push('/');
    string_to_sign.push_str(input.region);
    string_to_sign.push('/');
    string_to_sign.push_str(input.service);
    string_to_sign.push_str("/aws4_request");
    let scope_end = string_to_sign.len();
    string_to_sign.push('\n');
    let creq_hash = match canonical_memo {
        Some(m) => m.digest(canonical_request.as_bytes()),
        None => Sha256::digest(canonical_request.as_bytes()).into(),
    };
    push_hex32(string_to_sign, &creq_hash);

    let scope = string_to_sign.get(scope_start..scope_end).unwrap_or("");
    authorization.clear();
    authorization.reserve(
        ALGORITHM.len() + access_key_id.len() + scope.len() + signed_headers.len() + 64 + 40,
    );
    authorization.push_str(ALGORITHM);
    authorization.push_str(" Credential=");
    authorization.push_str(access_key_id);
    authorization.push('/');
    authorization.push_str(scope);
    authorization.push_str(", SignedHeaders=");
    authorization.push_str(signed_headers);
    authorization.push_str(", Signature=");
    let signature_start = authorization.len();
    let signature = match memo {
        Some(memo) => signing_key.mac_memoized(string_to_sign.as_bytes(), memo),
        None => signing_key.mac(string_to_sign.as_bytes()),
    };
    push_hex32(authorization, &signature);
    Ok(Parts {
        signed_range,
        signature_start,
    })
}

#[cfg(test)]
mod tests {
    use super::canonical_request::*;
    use super::date::*;
    use super::encoding::*;
    use super::signing_key::*;
    use super::*;

    fn uri(path: &str, rules: UriRules) -> Result<String, SigV4Error> {
        let mut s = String::new();
        push_canonical_uri(&mut s, path, rules)?;
        Ok(s)
    }

    fn query(q: &str) -> Result<String, SigV4Error> {
        let mut s = String::new();
        push_canonical_query(&mut s, q)?;
        Ok(s)
    }

    #[test]
    fn amz_date_epoch_and_known_instants() {
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        // The test-suite instant.
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(format_amz_date(86_399), "19700101T235959Z");
        assert_eq!(format_amz_date(86_400), "19700102T000000Z");
        assert_eq!(format_amz_date(946_684_799), "19991231T235959Z");
        assert_eq!(format_amz_date(946_684_800), "20000101T000000Z");
        assert_eq!(format_amz_date(2_147_483_647), "20380119T031407Z");
        assert_eq!(format_amz_date(253_402_300_799), "99991231T235959Z");
    }

    #[test]
    fn amz_date_leap_years() {
        // 2000 is a leap year (divisible by 400), 1900/2100 are not, 2024 is.
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(format_amz_date(951_868_800), "20000301T000000Z");
        assert_eq!(format_amz_date(1_709_208_000), "20240229T120000Z");
        assert_eq!(format_amz_date(1_709_251_199), "20240229T235959Z");
        assert_eq!(format_amz_date(1_709_251_200), "20240301T000000Z");
        assert_eq!(format_amz_date(1_677_628_799), "20230228T235959Z");
        assert_eq!(format_amz_date(1_677_628_800), "20230301T000000Z");
        // 2100-02-28T00:00:00Z and the next day is March 1st.
        assert_eq!(format_amz_date(4_107_456_000), "21000228T000000Z");
        assert_eq!(format_amz_date(4_107_542_400), "21000301T000000Z");
        assert_eq!(format_amz_date(1_735_689_599), "20241231T235959Z");
        assert_eq!(format_amz_date(1_735_603_200), "20241231T000000Z");
    }

    #[test]
    fn amz_date_matches_a_day_by_day_walk() {
        // Walk every day from 1970 to 2200 and compare with a naive calendar.
        let mut secs = 0u64;
        for year in 1970u32..2200 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    let want = format!("{year:04}{:02}{d:02}T000000Z", m + 1);
                    assert_eq!(format_amz_date(secs), want);
                    secs += 86_400;
                }
            }
        }
    }

    #[test]
    fn amz_date_huge_does_not_panic() {
        let s = format_amz_date(u64::MAX);
        assert!(s.ends_with('Z'));
        assert_eq!(date_of(&s), Err(SigV4Error::BadDate));
    }

    #[test]
    fn date_validation() {
        assert_eq!(date_of("20150830T123600Z"), Ok("20150830"));
        for bad in [
            "",
            "20150830T123600",
            "20150830T123600z",
            "20150830 123600Z",
            "2015083aT123600Z",
            "20150830T123600ZZ",
            "é0150830T12360Z",
        ] {
            assert_eq!(date_of(bad), Err(SigV4Error::BadDate), "{bad}");
        }
    }

    #[test]
    fn hex_digits() {
        for b in 0..=255u8 {
            let mut digest = [0u8; 32];
            for (i, d) in digest.iter_mut().enumerate() {
                *d = b.wrapping_add((i as u8).wrapping_mul(37));
            }
            let mut s = String::new();
            push_hex32(&mut s, &digest);
            assert_eq!(s, hex::encode(digest));
        }
    }

    #[test]
    fn sha256_and_empty() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
        assert_eq!(
            sha256_hex(b"Param1=value1"),
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
    }

    #[test]
    fn signing_key_matches_aws_docs_example() {
        // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
        // (the classic "iam" example).
        let key = derive_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// HMAC-SHA256 of one contiguous key, the reference for the signing key's keyed state.
    fn reference_hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        use hmac::digest::KeyInit;
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn hmac_long_keys_are_hashed() {
        // A secret longer than the stack buffer goes through the allocating path.
        let long = "x".repeat(300);
        let mine = mac_with(&keyed(&[b"AWS4", long.as_bytes()]), b"20150830");
        assert_eq!(
            mine,
            reference_hmac(format!("AWS4{long}").as_bytes(), b"20150830")
        );
        // Keys around the HMAC block (64 bytes) and the stack buffer (256), and short keys.
        for n in [0usize, 1, 28, 59, 60, 61, 200, 251, 252, 253] {
            let s = "k".repeat(n);
            let a = mac_with(&keyed(&[b"AWS4", s.as_bytes()]), b"d");
            assert_eq!(
                a,
                reference_hmac(format!("AWS4{s}").as_bytes(), b"d"),
                "{n}"
            );
        }
    }

    #[test]
    fn signatures_of_messages_sharing_a_first_block_are_each_right() {
        let key = SigningKey::from_bytes(&[0x5a; 32]);
        let mut memo = FirstBlockMemo::default();
        // Messages that share their first 64 bytes, then one that differs only in byte 63
        // (the cached state must not serve it), then the first again, in an order that
        // replaces the cached block each time.
        let mut a = vec![b'a'; 64];
        a.extend_from_slice(b"tail one");
        let mut a2 = a[..64].to_vec();
        a2.extend_from_slice(
            b"another, longer tail that spans a block boundary: ..................",
        );
        let mut b = a.clone();
        b[63] = b'b';
        for data in [
            &a,
            &a2,
            &b,
            &a,
            &b,
            &a2,
            &a[..64].to_vec(),
            &a[..63].to_vec(),
        ] {
            assert_eq!(key.mac(data), reference_hmac(&[0x5a; 32], data));
            let memoized = key.mac_memoized(data, &mut memo);
            assert_eq!(memoized, reference_hmac(&[0x5a; 32], data));
        }
    }

    #[test]
    fn canonical_request_digests_sharing_a_first_block_are_each_right() {
        let mut memo = CanonicalRequestMemo::default();
        let mut a = vec![b'a'; 64];
        a.extend_from_slice(b"tail one");
        let mut a2 = a[..64].to_vec();
        a2.extend_from_slice(&[b'.'; 130]);
        let mut b = a.clone();
        b[63] = b'b';
        for data in [
            &a,
            &a2,
            &b,
            &a,
            &b,
            &a2,
            &a[..64].to_vec(),
            &a[..63].to_vec(),
            &vec![],
        ] {
            let want: [u8; 32] = Sha256::digest(data).into();
            assert_eq!(memo.digest(data), want, "{} bytes", data.len());
        }
    }

    #[test]
    fn hmac_key_is_reusable_for_any_message_length() {
        let key = SigningKey::from_bytes(&[0xab; 32]);
        for n in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 200] {
            let data = vec![b'm'; n];
            assert_eq!(key.mac(&data), reference_hmac(&[0xab; 32], &data), "{n}");
            // The cached state is not consumed.
            assert_eq!(key.mac(&data), reference_hmac(&[0xab; 32], &data), "{n}");
        }
        let k = SigningKey::derive("secret", "20150830", "us-east-1", "service");
        assert_eq!(
            *k.as_bytes(),
            derive_signing_key("secret", "20150830", "us-east-1", "service")
        );
        assert_eq!(format!("{k:?}"), "SigningKey { .. }");
    }

    #[test]
    fn encoding_sets() {
        let mut s = String::new();
        push_encoded(
            &mut s,
            "-._~AZaz09 !\"#$%&'()*+,/:;<=>?@[\\]^`{|}\x00\x7f\u{1234}",
        );
        assert_eq!(
            s,
            "-._~AZaz09%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E%60%7B%7C%7D%00%7F%E1%88%B4"
        );
    }

    #[test]
    fn default_uri_normalization() {
        let d = |p| uri(p, UriRules::Default).unwrap();
        assert_eq!(d("/"), "/");
        assert_eq!(d("//"), "/");
        assert_eq!(d("///"), "/");
        assert_eq!(d("/./"), "/");
        assert_eq!(d("/."), "/");
        assert_eq!(d("/.."), "/");
        assert_eq!(d("/../.."), "/");
        assert_eq!(d("/../../a"), "/a");
        assert_eq!(d("/example/.."), "/");
        assert_eq!(d("/example1/example2/../.."), "/");
        assert_eq!(d("/a/b/.."), "/a/");
        assert_eq!(d("/a/b/../"), "/a/");
        assert_eq!(d("/a/b/."), "/a/b/");
        assert_eq!(d("/./example"), "/example");
        assert_eq!(d("//example//"), "/example/");
        assert_eq!(d("/a//b"), "/a/b");
        assert_eq!(d("/a/b/"), "/a/b/");
        assert_eq!(d("/a/b"), "/a/b");
        assert_eq!(d("/a/./b/../c/"), "/a/c/");
        assert_eq!(d("/..a/b./.c"), "/..a/b./.c");
        assert_eq!(d("/..."), "/...");
    }

    #[test]
    fn default_uri_double_encodes() {
        let d = |p| uri(p, UriRules::Default).unwrap();
        assert_eq!(d("/a%20b"), "/a%2520b");
        assert_eq!(d("/example space/"), "/example%20space/");
        assert_eq!(d("/\u{1234}"), "/%E1%88%B4");
        assert_eq!(
            d("/test/@connections/JBDvjfGEIAMCERw%3D"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        // Encoded dots are not dot segments; malformed escapes are just bytes.
        assert_eq!(d("/%2E%2E/a"), "/%252E%252E/a");
        assert_eq!(d("/%zz"), "/%25zz");
        assert_eq!(d("/a+b"), "/a%2Bb");
    }

    #[test]
    fn s3_uri_single_encoding() {
        let s = |p| uri(p, UriRules::S3);
        assert_eq!(s("/").unwrap(), "/");
        assert_eq!(s("//example//").unwrap(), "//example//");
        assert_eq!(s("/./a/../b/").unwrap(), "/./a/../b/");
        assert_eq!(s("/a%20b").unwrap(), "/a%20b");
        assert_eq!(s("/a%2Fb").unwrap(), "/a%2Fb");
        assert_eq!(s("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(s("/%7e%41").unwrap(), "/~A");
        assert_eq!(s("/a b!+").unwrap(), "/a%20b%21%2B");
        assert_eq!(s("/\u{1234}").unwrap(), "/%E1%88%B4");
        assert_eq!(s("/%E1%88%B4").unwrap(), "/%E1%88%B4");
        assert!(matches!(s("/%zz"), Err(SigV4Error::BadPath(_))));
        assert!(matches!(s("/%4"), Err(SigV4Error::BadPath(_))));
        assert!(matches!(s("/%"), Err(SigV4Error::BadPath(_))));
    }

    #[test]
    fn s3_forwarded_path_is_the_signed_uri_when_it_differs() {
        let f = |p| s3_forwarded_path(p).unwrap();
        for same in [
            "/",
            "//leading-slash-key",
            "/a//b/./../c",
            "/a%2Fb",
            "/a%20b%21",
            "/~k-_.",
            "/%E1%88%B4",
        ] {
            assert_eq!(f(same), None, "{same}");
            assert_eq!(uri(same, UriRules::S3).unwrap(), same);
        }
        for (sent, forwarded) in [
            ("/a%2fb", "/a%2Fb"),
            ("/%7Ek", "/~k"),
            ("/%41", "/A"),
            ("/a\\b", "/a%5Cb"),
            ("/a!b", "/a%21b"),
            ("/k+", "/k%2B"),
            ("/\u{1234}", "/%E1%88%B4"),
        ] {
            assert_eq!(f(sent).as_deref(), Some(forwarded), "{sent}");
            assert_eq!(uri(sent, UriRules::S3).unwrap(), forwarded);
            assert_eq!(f(forwarded), None, "{forwarded} is canonical");
        }
        assert!(matches!(
            s3_forwarded_path("/%zz"),
            Err(SigV4Error::BadPath(_))
        ));
        assert!(matches!(
            s3_forwarded_path("/%4"),
            Err(SigV4Error::BadPath(_))
        ));
    }

    #[test]
    fn path_must_be_absolute() {
        for rules in [UriRules::Default, UriRules::S3] {
            assert!(matches!(uri("", rules), Err(SigV4Error::BadPath(_))));
            assert!(matches!(uri("a/b", rules), Err(SigV4Error::BadPath(_))));
            assert!(matches!(uri("*", rules), Err(SigV4Error::BadPath(_))));
        }
    }

    #[test]
    fn canonical_query_rules() {
        assert_eq!(query("").unwrap(), "");
        assert_eq!(query("b=2&a=1").unwrap(), "a=1&b=2");
        assert_eq!(query("a=2&a=1&a=10").unwrap(), "a=1&a=10&a=2");
        assert_eq!(
            query("Param1=value2&Param1=Value1").unwrap(),
            "Param1=Value1&Param1=value2"
        );
        assert_eq!(query("a&b=").unwrap(), "a=&b=");
        assert_eq!(query("a=&&b").unwrap(), "a=&b=");
        assert_eq!(query("=v").unwrap(), "=v");
        assert_eq!(query("k=a=b").unwrap(), "k=a%3Db");
        assert_eq!(query("k=a+b").unwrap(), "k=a%20b");
        assert_eq!(query("k=a%2Bb").unwrap(), "k=a%2Bb");
        assert_eq!(query("k=a%2bb").unwrap(), "k=a%2Bb");
        assert_eq!(query("k=%7E%41").unwrap(), "k=~A");
        assert_eq!(query("k=/?:@").unwrap(), "k=%2F%3F%3A%40");
        assert_eq!(query("\u{1234}=bar").unwrap(), "%E1%88%B4=bar");
        assert_eq!(
            query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1").unwrap(),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
        // Sorted by encoded key: '%' (0x25) sorts before letters, '-' before '='.
        assert_eq!(query("a-b=1&a=2").unwrap(), "a=2&a-b=1");
        assert!(matches!(query("k=%G0"), Err(SigV4Error::BadPath(_))));
        assert!(matches!(query("k=%"), Err(SigV4Error::BadPath(_))));
    }

    #[test]
    fn word_at_a_time_checks_match_byte_checks() {
        for len in [1usize, 7, 8, 9, 16, 17, 24] {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    let bad = (b < 0x20 && b != b'\t') || b == 0x7f;
                    match checked_value("n", &v) {
                        Ok((_, space)) => {
                            assert!(!bad && b < 0x80, "{len} {pos} {b}");
                            assert_eq!(space, b == b' ', "{len} {pos} {b}");
                        }
                        Err(_) => assert!(bad || b >= 0x80, "{len} {pos} {b}"),
                    }
                    assert_eq!(is_graphic(&v), b.is_ascii_graphic(), "{len} {pos} {b}");
                }
            }
        }
        assert!(is_graphic(EMPTY_SHA256.as_bytes()));
        assert!(checked_value("n", "a\u{e9}  b\tc".as_bytes()).unwrap().1);
    }

    #[test]
    fn token_classes() {
        assert_eq!(token_has_upper("x-amz-date"), Some(false));
        assert_eq!(token_has_upper("X-Amz-Date"), Some(true));
        assert_eq!(token_has_upper("a!#$%&'*+-.^_`|~9"), Some(false));
        for bad in ["", "a b", "a:b", "a\u{e9}", "(a)", "a/b", "a\"b"] {
            assert_eq!(token_has_upper(bad), None, "{bad}");
        }
    }

    #[test]
    fn unsorted_queries_are_sorted_by_key_then_value() {
        assert_eq!(query("b=1&a=2&a=1").unwrap(), "a=1&a=2&b=1");
        assert_eq!(query("a-b=1&a=2").unwrap(), "a=2&a-b=1");
        assert_eq!(query("z&y=&x=%3D&&w").unwrap(), "w=&x=%3D&y=&z=");
        let mut s = String::from("prefix\n");
        push_canonical_query(&mut s, "b=%2f&a=+").unwrap();
        assert_eq!(s, "prefix\na=%20&b=%2F");
    }

    #[test]
    fn trimmed_values() {
        let t = |v: &str| {
            let mut s = String::new();
            push_trimmed_value(&mut s, v);
            s
        };
        assert_eq!(t(""), "");
        assert_eq!(t("   "), "");
        assert_eq!(t(" value1 "), "value1");
        assert_eq!(t("\"a   b   c\""), "\"a b c\"");
        assert_eq!(t("a\t b"), "a\t b");
        assert_eq!(t("\ta\t"), "\ta\t");
    }

    fn input<'a>(headers: &'a [(&'a str, &'a [u8])]) -> SigningInput<'a> {
        SigningInput {
            method: "GET",
            path_and_query: "/",
            headers,
            payload_hash: EMPTY_SHA256,
            amz_date: "20150830T123600Z",
            region: "us-east-1",
            service: "service",
            uri_rules: UriRules::Default,
        }
    }

    #[test]
    fn headers_sorted_joined_and_lowercased() {
        let headers: [(&str, &[u8]); 5] = [
            ("X-Amz-Date", b"20150830T123600Z"),
            ("My-Header1", b"value4"),
            ("Host", b"example.amazonaws.com"),
            ("my-header1", b"  value1  x  "),
            ("MY-HEADER1", b""),
        ];
        let (creq, signed) = canonical_request(&input(&headers)).unwrap();
        assert_eq!(signed, "host;my-header1;x-amz-date");
        assert_eq!(
            creq,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1 x,\n\
                 x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n{EMPTY_SHA256}"
            )
        );
    }

    #[test]
    fn vanilla_signature() {
        let headers: [(&str, &[u8]); 2] = [
            ("Host", b"example.amazonaws.com"),
            ("X-Amz-Date", b"20150830T123600Z"),
        ];
        let key = derive_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        let s = sign(&input(&headers), "AKIDEXAMPLE", &key.into()).unwrap();
        assert_eq!(
            s.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn bad_header_values_are_rejected_without_the_value() {
        for bad in [
            &b"a\r\nInjected: x"[..],
            b"a\nb",
            b"a\rb",
            b"a\0b",
            b"a\x1bb",
            b"a\x7fb",
            b"\xff\xfe",
        ] {
            let headers: [(&str, &[u8]); 2] = [("Host", b"h"), ("X-Secret", bad)];
            let err = canonical_request(&input(&headers)).unwrap_err();
            assert_eq!(err, SigV4Error::BadHeader("x-secret".to_owned()));
            assert!(!format!("{err} {err:?}").contains("Injected"));
        }
        let ok: [(&str, &[u8]); 1] = [("X-Tab", b"a\tb \xe1\x88\xb4")];
        assert!(canonical_request(&input(&ok)).is_ok());
    }

    #[test]
    fn bad_names_method_scope_and_hash() {
        let headers: [(&str, &[u8]); 1] = [("bad name\n", b"v")];
        assert_eq!(
            canonical_request(&input(&headers)).unwrap_err(),
            SigV4Error::BadHeader("bad name\\n".to_owned())
        );
        let headers: [(&str, &[u8]); 1] = [("", b"v")];
        assert!(canonical_request(&input(&headers)).is_err());

        let mut i = input(&[]);
        i.method = "GET /x";
        assert_eq!(
            canonical_request(&i).unwrap_err(),
            SigV4Error::BadHeader(":method".into())
        );
        let mut i = input(&[]);
        i.payload_hash = "abc\n";
        assert!(canonical_request(&i).is_err());
        let key = SigningKey::from_bytes(&[0u8; 32]);
        let mut i = input(&[]);
        i.region = "us-east-1/x";
        assert!(sign(&i, "AKID", &key).is_err());
        let mut i = input(&[]);
        i.service = "";
        assert!(sign(&i, "AKID", &key).is_err());
        assert!(sign(&input(&[]), "AKID, x", &key).is_err());
        let mut i = input(&[]);
        i.amz_date = "2015-08-30";
        assert_eq!(sign(&i, "AKID", &key).unwrap_err(), SigV4Error::BadDate);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let weird = [
            "",
            "?",
            "/?",
            "/?&&&",
            "/?=",
            "/?%",
            "/?%%",
            "/%",
            "/..%",
            "/\u{ff}..",
            "//..//..",
            "/?a=%e1%88",
            "/ä/../ö?ü=ß",
            "/%%%%%",
            "/?a+b=c+d",
        ];
        for p in weird {
            for rules in [UriRules::Default, UriRules::S3] {
                let mut i = input(&[]);
                i.path_and_query = p;
                i.uri_rules = rules;
                let _ = sign(&i, "AKID", &SigningKey::from_bytes(&[0; 32]));
            }
        }
    }

    #[test]
    fn cache_reuses_and_bounds() {
        let mut c = SigningKeyCache::new();
        assert!(c.is_empty());
        let k1 = *c
            .get("secret", "20150830", "us-east-1", "service")
            .as_bytes();
        assert_eq!(
            k1,
            derive_signing_key("secret", "20150830", "us-east-1", "service")
        );
        assert_eq!(
            *c.get("secret", "20150830", "us-east-1", "service")
                .as_bytes(),
            k1
        );
        assert_eq!(c.len(), 1);
        // Tuples that concatenate to the same bytes are different entries.
        let k2 = *c
            .get("secret2", "0150830", "us-east-1", "service")
            .as_bytes();
        assert_ne!(k1, k2);
        assert_eq!(c.len(), 2);
        let k3 = *c
            .get("secret", "20150830", "us-east-1s", "ervice")
            .as_bytes();
        let k4 = *c
            .get("secret", "20150830", "us-east-", "1service")
            .as_bytes();
        assert_ne!(k3, k1);
        assert_ne!(k4, k1);
        assert_ne!(k3, k4);
        assert_eq!(c.len(), 4);
        assert_eq!(
            *c.get("secret2", "0150830", "us-east-1", "service")
                .as_bytes(),
            k2
        );
        assert_eq!(c.len(), 4);
        for i in 0..200 {
            let r = format!("r{i}");
            let k = c.get("s", "20150830", &r, "svc");
            assert_eq!(
                *k.as_bytes(),
                derive_signing_key("s", "20150830", &r, "svc")
            );
            assert!(c.len() <= SIGNING_KEY_CACHE_CAPACITY);
        }
        // A key handed out outlives the cache being cleared.
        let k = c.get("s", "20150830", "r1", "svc");
        c.clear();
        assert_eq!(
            *k.as_bytes(),
            derive_signing_key("s", "20150830", "r1", "svc")
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.starts_with("SigningKeyCache"));
        c.clear();
        assert!(c.is_empty());
    }
}
