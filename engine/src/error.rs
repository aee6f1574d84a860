//! Engine errors. Operating errors only: programmer errors are assertions.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {offset} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error(
        "partition log {path} failed an earlier write and refuses appends until it reopens (retried every second)"
    )]
    Failed { path: PathBuf },
    #[error("partition log is closed")]
    Closed,
    #[error(transparent)]
    Sequence(#[from] crate::log::producer_state::AppendCheckError),
}

impl LogError {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
