// SPDX-License-Identifier: GPL-2.0
//! The single error type of every encoder, decoder and parser in `proto`.

use core::fmt;

/// Result alias used throughout `proto`.
pub type Result<T> = core::result::Result<T, ProtoError>;

/// Why an encode, decode or parse failed. Never carries input-owned data.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// The input ended before the structure was complete.
    Truncated,
    /// The input holds more bytes than the structure declares.
    TrailingBytes,
    /// Magic number does not match (foreign or corrupt data).
    BadMagic,
    /// Unknown (usually newer) format or protocol version.
    BadVersion,
    /// Unknown message type.
    BadType,
    /// Checksum mismatch (corrupt data).
    BadChecksum,
    /// An arithmetic overflow would occur (e.g. offset + length > u64::MAX).
    Overflow,
    /// A field has a value outside its allowed range.
    InvalidField(&'static str),
    /// The caller's output buffer is too small.
    BufferTooSmall,
    /// A list has more entries than the format allows.
    TooMany(&'static str),
    /// Control grammar: the first word is not a known command.
    UnknownCommand,
    /// Control grammar: a required argument is missing.
    MissingArgument(&'static str),
    /// Control grammar: a viod id is not a decimal u32.
    BadViodId,
    /// Control grammar: an address is not `A.B.C.D:PORT` or `[v6]:PORT`.
    BadAddress,
    /// Control grammar: a number is not a valid decimal in range.
    BadNumber(&'static str),
    /// Control grammar: more arguments than the command takes.
    TrailingGarbage,
    /// Control grammar: the line is longer than the limit.
    LineTooLong,
    /// A message without a tag where keys are required.
    Unauthenticated,
    /// A message signed by a key we do not hold (or signed at all, in the
    /// insecure mode).
    UnknownKey,
    /// A message whose tag does not match its bytes.
    BadTag,
}

impl ProtoError {
    /// The errno name the kernel answers for this error on the control file
    /// (`error <ERRNO-NAME> <message>`).
    #[cfg(not(nfsp_kernel))]
    pub fn errno_name(&self) -> &'static str {
        match self {
            ProtoError::BufferTooSmall => "ENOSPC",
            ProtoError::LineTooLong => "E2BIG",
            ProtoError::TooMany(_) => "E2BIG",
            ProtoError::Overflow => "EOVERFLOW",
            ProtoError::UnknownCommand => "EOPNOTSUPP",
            _ => "EINVAL",
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Truncated => f.write_str("truncated input"),
            ProtoError::TrailingBytes => f.write_str("trailing bytes after the declared length"),
            ProtoError::BadMagic => f.write_str("bad magic number"),
            ProtoError::BadVersion => f.write_str("unsupported version"),
            ProtoError::BadType => f.write_str("unknown message type"),
            ProtoError::BadChecksum => f.write_str("checksum mismatch"),
            ProtoError::Overflow => f.write_str("arithmetic overflow"),
            ProtoError::InvalidField(n) => write!(f, "invalid field {n}"),
            ProtoError::BufferTooSmall => f.write_str("output buffer too small"),
            ProtoError::TooMany(n) => write!(f, "too many {n}"),
            ProtoError::UnknownCommand => f.write_str("unknown command"),
            ProtoError::MissingArgument(n) => write!(f, "missing argument {n}"),
            ProtoError::BadViodId => f.write_str("bad viod id"),
            ProtoError::BadAddress => f.write_str("malformed address"),
            ProtoError::BadNumber(n) => write!(f, "bad number for {n}"),
            ProtoError::TrailingGarbage => f.write_str("trailing garbage"),
            ProtoError::LineTooLong => f.write_str("line too long"),
            ProtoError::Unauthenticated => f.write_str("unauthenticated message"),
            ProtoError::UnknownKey => f.write_str("message signed with an unknown key"),
            ProtoError::BadTag => f.write_str("authentication tag mismatch"),
        }
    }
}

impl core::error::Error for ProtoError {}
