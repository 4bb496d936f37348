//! Containers: configuration → OCI runtime spec, lifecycle, the per-container monitor, logs,
//! exec, and the runtimes (builtin libcontainer, or any OCI runtime binary).

pub mod state;

pub use state::image_ids_in_use;

use berth_store::StoreError;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] rusqlite_error::Error),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

mod rusqlite_error {
    pub use berth_store::DbError as Error;
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
