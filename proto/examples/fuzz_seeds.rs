// SPDX-License-Identifier: GPL-2.0
//! Writes the committed fuzz seed corpus, `nfsp_proto::fuzzing::seeds()`,
//! to `DIR/<target>/<name>` (default `proto/fuzz/seeds`), removing files
//! that are no longer part of it. Deterministic: regenerating after a
//! format change gives a reviewable diff.
//!
//! `cargo run -p nfsp_proto --example fuzz_seeds --features fuzzing -- proto/fuzz/seeds`

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use nfsp_proto::fuzzing::{seeds, TARGETS};

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "proto/fuzz/seeds".into()),
    );
    let all = seeds();
    for (target, _) in TARGETS {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        let keep: BTreeSet<&str> = all
            .iter()
            .filter(|s| s.target == *target)
            .map(|s| s.name.as_str())
            .collect();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            if !e.file_name().to_str().is_some_and(|n| keep.contains(n)) {
                fs::remove_file(e.path())?;
            }
        }
    }
    for s in &all {
        fs::write(root.join(s.target).join(&s.name), &s.data)?;
    }
    for (target, _) in TARGETS {
        let n = all.iter().filter(|s| s.target == *target).count();
        println!("{target}: {n} seeds");
    }
    Ok(())
}
