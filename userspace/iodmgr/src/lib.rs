// SPDX-License-Identifier: GPL-2.0
//! `iodmgr` as a library: the health state machine (heartbeats, misses,
//! slow iods, fresh/stale replicas), the re-sync of a returning replica
//! from a healthy one, the status snapshot (state file) and its OpenMetrics
//! rendering. The daemon loop is the `run` subcommand.

pub mod health;
pub mod metrics;
pub mod resync;
pub mod status;

/// Default state file, rewritten by `iodmgr run` every interval.
pub const DEFAULT_STATE: &str = "/run/nfsp/iodmgr.json";
