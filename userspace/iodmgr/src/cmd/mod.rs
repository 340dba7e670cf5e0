// SPDX-License-Identifier: GPL-2.0
//! One module per subcommand.

pub mod run;
pub mod status;
