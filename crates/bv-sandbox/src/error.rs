//! Typed errors of the sandbox.

/// What can go wrong setting up or running a jail.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bubblewrap (or prlimit) is not installed.
    #[error("{0} not found (run `make setup`)")]
    ToolMissing(&'static str),
    /// The kernel refused to create the namespaces (user namespaces disabled?).
    #[error("cannot create the sandbox: {0}")]
    Unavailable(String),
    /// Confinement inside the jail failed (Landlock or seccomp).
    #[error("confinement failed: {0}")]
    Confine(String),
    /// I/O around the jail.
    #[error("sandbox I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl SandboxError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ToolMissing(_) => "sandbox_tool_missing",
            Self::Unavailable(_) => "sandbox_unavailable",
            Self::Confine(_) => "sandbox_confine_failed",
            Self::Io(_) => "sandbox_io_error",
        }
    }
}
