//! Typed errors of the sandbox.

/// What can go wrong setting up or running a jail.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The launcher binary is not next to the program.
    #[error("{0} not found next to this program (build it: `make build`)")]
    ToolMissing(&'static str),
    /// The launcher could not build the jail (reported by `bv-jail` itself).
    #[error("building the jail: {0}")]
    Setup(String),
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
            Self::Unavailable(_) | Self::Setup(_) => "sandbox_unavailable",
            Self::Confine(_) => "sandbox_confine_failed",
            Self::Io(_) => "sandbox_io_error",
        }
    }
}
