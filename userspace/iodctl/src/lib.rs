// SPDX-License-Identifier: GPL-2.0
//! `iodctl` as a library: one transaction on the module's control file
//! (write a command, read the answer lines back, kernel refusals as
//! [`control::Refused`]), shared with `iodmgr`.

pub mod control;
pub mod errno;
pub mod viods_conf;
