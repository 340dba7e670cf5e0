// SPDX-License-Identifier: GPL-2.0
//! The nfsp storage daemon (iod) as a library: [`server::Server`] serves the
//! authenticated `nfsp_proto::wire` protocol over UDP on a data directory.

pub mod policy;
pub mod ratelimit;
pub mod replay;
pub mod server;
pub mod stats;
pub mod store;
pub mod transparent;

pub use server::{Config, Server, ServerError, ServerHandle};
