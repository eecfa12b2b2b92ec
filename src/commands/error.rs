//! Command errors and their one mapping to RESP error strings.
//!
//! Handlers return a [`CmdError`]; the dispatcher writes `-<Display>` to the
//! client. Messages follow Redis 7.0 word for word where Redis has the case.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CmdError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR index out of range")]
    IndexOutOfRange,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    /// A message that echoes client bytes verbatim (not necessarily UTF-8).
    #[error("{}", String::from_utf8_lossy(.0))]
    Raw(Vec<u8>),
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand { cmd: String, sub: String },
    #[error("ERR DB index is out of range")]
    DbIndex,
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    #[error("ERR {0} is negative")]
    Negative(&'static str),
    #[error("ERR {0} is out of range")]
    OutOfRange(&'static str),
    #[error("ERR timeout is not a float or out of range")]
    TimeoutNotFloat,
    #[error("ERR timeout is negative")]
    TimeoutNegative,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(String),
    #[error("ERR Command not allowed inside a transaction")]
    NotInMulti,
    #[error("ERR min or max is not a float")]
    MinMaxNotFloat,
    #[error("ERR min or max not valid string range item")]
    LexRange,
    #[error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")]
    StringTooLong,
    /// A complete message, prefix included (`ERR ...`, `NOPERM ...`).
    #[error("{0}")]
    Msg(String),
}

pub type CmdResult = Result<(), CmdError>;

impl CmdError {
    /// The exact bytes sent after `-`.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            CmdError::Raw(b) => b.clone(),
            other => other.to_string().into_bytes(),
        }
    }

    pub fn msg(s: impl Into<String>) -> CmdError {
        CmdError::Msg(s.into())
    }

    pub fn err(s: impl AsRef<str>) -> CmdError {
        CmdError::Msg(format!("ERR {}", s.as_ref()))
    }
}
