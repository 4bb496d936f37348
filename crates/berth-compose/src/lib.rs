//! Compose files → a typed, normalised project, staged as compose-go does:
//!
//! 1. [`yaml`]: parse to a tree that keeps file and line of every node (anchors, aliases and
//!    merge keys applied),
//! 2. [`interp`]: interpolate `${VAR…}` from the environment and `.env`,
//! 3. [`normalize`]: short syntaxes → long ones, relative paths → absolute,
//! 4. [`merge`]: several `-f` files, `include` and `extends` by the specification's rules,
//! 5. [`loader`]: profiles, validation and conversion to the typed [`model`], with errors that
//!    name file, line and key (`compose.yaml:7: services.web.ports[1]: invalid port "80:x"`).
//!
//! This crate only reads files; running a project is `berth-compose-run`'s job.

#![warn(missing_docs)]

pub mod dotenv;
pub mod interp;
pub mod loader;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod yaml;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use loader::{load, Options, MAX_COMPOSE_FILE};
pub use model::{Project, Service};

/// Errors of loading a compose project.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The YAML (or an env file) is malformed.
    #[error("{file}:{line}: {msg}")]
    Syntax {
        /// File name.
        file: String,
        /// Line, 1-based.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A value is invalid.
    #[error("{file}:{line}: {path}: {msg}")]
    Invalid {
        /// File name.
        file: String,
        /// Line, 1-based.
        line: usize,
        /// Dotted key path (`services.web.ports[1]`).
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// The project as a whole is inconsistent (undefined dependency, network, …).
    #[error("{0}")]
    Project(String),
    /// No compose file was found.
    #[error("no configuration file provided: not found (looked for compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml in {0} and its parents; use -f FILE)")]
    NotFound(PathBuf),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result with [`ComposeError`].
pub type Result<T> = std::result::Result<T, ComposeError>;

/// Read a text file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<String> {
    let io = |source| ComposeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut s = String::new();
    f.take(max + 1).read_to_string(&mut s).map_err(io)?;
    if s.len() as u64 > max {
        return Err(ComposeError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("file larger than {max} bytes")),
        });
    }
    Ok(s)
}
