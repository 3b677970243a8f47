//! Property-based fuzzing of the proxy-wasm header-map codec: what Envoy hands the module is
//! parsed without a panic, and what the module hands Envoy reads back the same. Fixed seeds,
//! no failure persistence (the same cases every run).

use crate::pairs;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, RngSeed, TestCaseResult, TestError, TestRunner,
};
use std::fmt::Debug;

fn run<S>(name: &str, cases: u32, seed: u64, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 4096,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, test) {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => {
            panic!("{name}: {why}\nminimal failing input: {input:#?}")
        }
        Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}"),
    }
}

fn pairs() -> BoxedStrategy<Vec<(String, Vec<u8>)>> {
    vec(("[^\u{0}]{0,12}", vec(any::<u8>(), 0..32)), 0..10).boxed()
}

#[test]
fn header_map_codec_round_trip() {
    run(
        "header_map_codec_round_trip",
        2000,
        0x5167_000a,
        pairs(),
        |p| {
            let refs: Vec<(&str, &[u8])> =
                p.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let bytes = pairs::serialize_pairs(&refs);
            prop_assert_eq!(pairs::deserialize_pairs(&bytes), Some(refs));
            Ok(())
        },
    );
}

#[test]
fn header_map_codec_garbage() {
    let strategy = prop_oneof![
        vec(any::<u8>(), 0..128),
        (
            pairs(),
            vec((any::<Index>(), any::<u8>()), 0..4),
            prop::option::of(any::<Index>())
        )
            .prop_map(|(p, flips, cut)| {
                let refs: Vec<(&str, &[u8])> =
                    p.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                let mut b = pairs::serialize_pairs(&refs);
                for (at, x) in flips {
                    let i = at.index(b.len());
                    b[i] = x;
                }
                if let Some(c) = cut {
                    let keep = c.index(b.len() + 1);
                    b.truncate(keep);
                }
                b
            }),
        // A count or sizes near u32::MAX.
        (
            any::<u32>(),
            vec(any::<u32>(), 0..6),
            vec(any::<u8>(), 0..32)
        )
            .prop_map(|(n, sizes, tail)| {
                let mut b = n.to_le_bytes().to_vec();
                for s in sizes {
                    b.extend_from_slice(&s.to_le_bytes());
                }
                b.extend(tail);
                b
            }),
    ];
    run(
        "header_map_codec_garbage",
        3000,
        0x5167_000b,
        strategy,
        |b| {
            if let Some(p) = pairs::deserialize_pairs(&b) {
                let size: usize = p.iter().map(|(_, v)| v.len()).sum();
                prop_assert!(size <= b.len());
                prop_assert!(p.len() * 8 + 4 <= b.len().max(4));
            }
            Ok(())
        },
    );
}
