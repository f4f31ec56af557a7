//! Configuration errors: each names the key and where its value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The TOML file; line and column (1-based) when known.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the value, when known.
        line: Option<usize>,
        /// 1-based column of the value, when known.
        column: Option<usize>,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A command-line flag.
    Flag {
        /// The flag, with its dashes: `--listen`.
        flag: &'static str,
    },
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File {
                path,
                line: Some(line),
                column: Some(column),
            } => write!(f, "{}:{line}:{column}", path.display()),
            Origin::File {
                path,
                line: Some(line),
                column: None,
            } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, .. } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::Flag { flag } => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("default value"),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// The file, with the position of the error.
        origin: Origin,
        /// What the parser said.
        message: String,
    },
    /// A key that tidegate does not know, in the file or the environment.
    #[error("{origin}: unknown key `{key}`{hint}")]
    UnknownKey {
        /// Dotted path of the key (`storage.segment_byte`).
        key: String,
        /// The file (with position) or the variable that set it.
        origin: Origin,
        /// A suggestion, empty or starting with "; ".
        hint: String,
    },
    /// A value that is wrong on its own or together with others.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// Dotted path of the key (`storage.segment_bytes`).
        key: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong and, where it helps, what would be right.
        message: String,
    },
    /// The effective configuration could not be written as TOML (a
    /// non-UTF-8 path).
    #[error("cannot print the configuration as TOML: {message}")]
    Print {
        /// What the serializer said.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Where the offending value came from, when known.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ConfigError::Syntax { origin, .. }
            | ConfigError::UnknownKey { origin, .. }
            | ConfigError::Invalid { origin, .. } => Some(origin),
            _ => None,
        }
    }
}
