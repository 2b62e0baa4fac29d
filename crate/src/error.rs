//! The engine's one error type. Each variant says what was expected and what was found,
//! so the message can go straight to a user (the wasm layer turns it into a JS `Error`).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no usable WebGPU/Vulkan adapter: {0}")]
    Gpu(String),

    #[error("the GPU device was lost ({0}); nothing computed on it can be read back")]
    DeviceLost(String),

    #[error("GPU work failed: {0}")]
    Execution(String),

    #[error("{op}: {message}")]
    Shape { op: &'static str, message: String },

    #[error("{what}: {message}")]
    Invalid { what: String, message: String },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape { op, message: message.into() }
    }

    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), message: message.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
