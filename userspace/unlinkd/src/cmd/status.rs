// SPDX-License-Identifier: GPL-2.0
//! `unlinkd status [--journal PATH] [--json]`

use std::path::PathBuf;

use anyhow::Context;
use unlinkd::journal::read_state;

/// Arguments of `status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The journal to read.
    #[arg(long, value_name = "PATH", default_value = unlinkd::DEFAULT_JOURNAL)]
    pub journal: PathBuf,
    /// Print JSON: {"pending":N,"bytes":B,"entries":E,"corrupt":C,
    /// "corrupt_bytes":CB,"first_corrupt":OFFSET|null}.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Replay the journal read-only and print the pending deletions.
    pub fn run(&self) -> anyhow::Result<()> {
        let st = read_state(&self.journal)
            .with_context(|| format!("reading {}", self.journal.display()))?;
        if self.json {
            let v = serde_json::json!({
                "pending": st.pending.len(),
                "bytes": st.pending_bytes(),
                "entries": st.entries,
                "corrupt": st.corrupt,
                "corrupt_bytes": st.corrupt_bytes,
                "first_corrupt": st.first_corrupt,
            });
            println!("{}", serde_json::to_string(&v).context("JSON")?);
        } else {
            println!(
                "{} file(s) pending, {} byte(s); journal {} ({} entries{})",
                st.pending.len(),
                st.pending_bytes(),
                self.journal.display(),
                st.entries,
                if st.corrupt > 0 {
                    format!(
                        ", {} corrupt region(s), {} bytes from byte {}",
                        st.corrupt,
                        st.corrupt_bytes,
                        st.first_corrupt.unwrap_or(0)
                    )
                } else {
                    String::new()
                }
            );
        }
        Ok(())
    }
}
