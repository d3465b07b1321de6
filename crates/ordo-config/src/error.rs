use thiserror::Error;

/// Why a channel configuration, a policy or a config update was refused. The message is
/// Fabric's, so that the text a client receives (in a Broadcast `info`, an osnadmin error) reads
/// as Fabric's would.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Malformed protobuf somewhere in the configuration or envelope.
    #[error("{0}")]
    Decode(String),
    /// The configuration is not a valid channel configuration (Fabric's bundle construction).
    #[error("{0}")]
    Invalid(String),
    /// A policy could not be compiled.
    #[error("{0}")]
    Policy(String),
    /// An MSP could not be set up.
    #[error("setting up the MSP manager failed: {0}")]
    Msp(String),
    /// A config update was refused by the configtx rules.
    #[error("{0}")]
    Update(String),
    /// A config update was not authorized by the policies it needs. Maps to FORBIDDEN.
    #[error("{0}")]
    Forbidden(String),
}

impl ConfigError {
    pub(crate) fn wrap(self, prefix: &str) -> ConfigError {
        let f = |m: String| format!("{prefix}: {m}");
        match self {
            ConfigError::Decode(m) => ConfigError::Decode(f(m)),
            ConfigError::Invalid(m) => ConfigError::Invalid(f(m)),
            ConfigError::Policy(m) => ConfigError::Policy(f(m)),
            ConfigError::Msp(m) => {
                ConfigError::Invalid(f(format!("setting up the MSP manager failed: {m}")))
            }
            ConfigError::Update(m) => ConfigError::Update(f(m)),
            ConfigError::Forbidden(m) => ConfigError::Forbidden(f(m)),
        }
    }
}
