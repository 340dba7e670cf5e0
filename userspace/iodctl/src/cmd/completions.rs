// SPDX-License-Identifier: GPL-2.0
//! `iodctl completions SHELL`: a completion script generated from the CLI
//! definition (clap_complete).

use clap::CommandFactory;
use clap_complete::Shell;

/// Arguments of `completions`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell. Install e.g. with
    /// `iodctl completions bash > /etc/bash_completion.d/iodctl`.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

impl Args {
    /// Write the script to `out`.
    pub fn write(&self, out: &mut dyn std::io::Write) {
        clap_complete::generate(self.shell, &mut crate::Cli::command(), "iodctl", out);
    }

    /// Print the script.
    pub fn run(&self) -> anyhow::Result<()> {
        let mut v = Vec::new();
        self.write(&mut v);
        crate::render::print(&String::from_utf8_lossy(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut v = Vec::new();
        Args { shell }.write(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn scripts_name_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = script(shell);
            for sub in [
                "add-viod",
                "set-state",
                "fsck",
                "genkey",
                "load-key",
                "rotate-key",
                "completions",
                "man",
            ] {
                assert!(s.contains(sub), "{shell}: {sub} missing");
            }
        }
        assert!(script(Shell::Bash).contains("complete -F _iodctl"));
    }
}
