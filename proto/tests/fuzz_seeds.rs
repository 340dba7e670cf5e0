// SPDX-License-Identifier: GPL-2.0
//! Replays the committed seed corpus of every fuzz target
//! (`proto/fuzz/seeds/<target>/`) through its check in
//! `nfsp_proto::fuzzing`, with a cheap mutation pass (every byte flipped,
//! every truncation), so the fuzz properties run in every `cargo test`,
//! not only under `make fuzz`.

use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use nfsp_proto::fuzzing::{seeds, Check, TARGETS};

const REGENERATE: &str =
    "cargo run -p nfsp_proto --example fuzz_seeds --features fuzzing -- proto/fuzz/seeds";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The seed files of `target`, by name; panics if there are none.
fn load(target: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = fuzz_dir().join("seeds").join(target);
    let rd = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed directory {}: {e} (run {REGENERATE})", dir.display()));
    let mut out = BTreeMap::new();
    for e in rd {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        out.insert(name, fs::read(e.path()).unwrap());
    }
    assert!(
        !out.is_empty(),
        "{} holds no seed (run {REGENERATE})",
        dir.display()
    );
    out
}

fn check_of(target: &str) -> Check {
    TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .unwrap_or_else(|| panic!("no fuzzing::{target}"))
        .1
}

/// Runs `check` on `input`, naming the seed and the mutation on failure.
fn run(check: Check, input: &[u8], what: impl Fn() -> String) {
    if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
        panic!("the check fails on {} (input {input:02x?})", what());
    }
}

fn replay(target: &str) {
    let check = check_of(target);
    for (name, data) in load(target) {
        run(check, &data, || format!("seed {target}/{name}"));
        let mut m = data.clone();
        for i in 0..data.len() {
            m[i] ^= 0xff;
            run(check, &m, || {
                format!("seed {target}/{name}, byte {i} flipped")
            });
            m[i] ^= 0xff;
        }
        for n in 0..data.len() {
            run(check, &data[..n], || {
                format!("seed {target}/{name} cut to {n} bytes")
            });
        }
    }
}

macro_rules! seed_tests {
    ($($t:ident),* $(,)?) => {
        $(#[test] fn $t() { replay(stringify!($t)); })*

        /// Every target has a test here, seeds, a fuzz binary and a
        /// `[[bin]]` entry.
        #[test]
        fn every_target_is_covered() {
            let here: Vec<&str> = vec![$(stringify!($t)),*];
            let targets: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
            assert_eq!(here, targets, "tests/fuzz_seeds.rs and fuzzing::TARGETS differ");
            let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
            for t in targets {
                let src = fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"));
                let body = fs::read_to_string(&src)
                    .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
                assert!(body.contains(&format!("fuzzing::{t}(")), "{} does not call fuzzing::{t}", src.display());
                assert!(manifest.contains(&format!("name = \"{t}\"")), "no [[bin]] {t} in proto/fuzz/Cargo.toml");
                load(t);
            }
        }
    };
}

seed_tests!(
    metafile, wire, unlink, control, nfs3, filekey, journal, auth, restamp, ds3, dsfh, ffreturn
);

/// The committed seeds are exactly what the generator writes now: a
/// format change must regenerate them, or they would only exercise the
/// decoders' error paths.
#[test]
fn committed_seeds_are_current() {
    let mut want: BTreeMap<&str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for s in seeds() {
        want.entry(s.target).or_default().insert(s.name, s.data);
    }
    for (t, _) in TARGETS {
        let got = load(t);
        let want = want.remove(t).unwrap_or_default();
        let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&got),
            names(&want),
            "seed files of {t} (run {REGENERATE})"
        );
        for (name, data) in &want {
            assert!(got[name] == *data, "{t}/{name} is stale (run {REGENERATE})");
        }
    }
    assert!(
        want.is_empty(),
        "seeds for unknown targets: {:?}",
        want.keys()
    );
}
