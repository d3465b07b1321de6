//! Structured logs with Fabric's log specification (`common/flogging`): `info`,
//! `ordo.raft=debug:info`, `ordo.orderer,ordo.ledger=warn:debug` — a default level and
//! per-logger levels, changeable at run time through the operations API's `/logspec`.
//!
//! Logger names map to tracing targets: `ordo.<crate>[.<module>…]` is the module path
//! `ordo_<crate>[::<module>…]`, any other dotted name has its dots read as `::`; a logger covers
//! its sub-loggers (prefix match, the longest wins, as in Fabric).

use std::sync::{Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// A log specification that cannot be used, with Fabric's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// A parsed spec: the default level and per-logger levels, as `tracing` directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    pub text: String,
    pub default: &'static str,
    pub loggers: Vec<(String, &'static str)>,
}

fn level(s: &str) -> Option<&'static str> {
    match s.to_ascii_lowercase().as_str() {
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "dpanic" | "panic" | "fatal" => Some("error"),
        _ => None,
    }
}

/// The tracing target a Fabric-style logger name stands for.
pub fn logger_target(name: &str) -> String {
    match name.strip_prefix("ordo.") {
        Some(rest) => {
            let mut parts = rest.split('.');
            let krate = parts.next().unwrap_or_default();
            let mut t = format!("ordo_{krate}");
            for p in parts {
                t.push_str("::");
                t.push_str(p);
            }
            t
        }
        None => name.replace('.', "::"),
    }
}

fn valid_logger(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.')
        && !name.ends_with('.')
}

/// Parses `[<logger>[,<logger>...]=]<level>[:...]` (Fabric's `LoggerLevels.ActivateSpec`).
pub fn parse_spec(spec: &str) -> Result<LogSpec, SpecError> {
    let bad = |seg: &str| {
        SpecError(format!(
            "invalid logging specification '{spec}': bad segment '{seg}'"
        ))
    };
    let mut default = "info";
    let mut loggers = Vec::new();
    for seg in spec.split(':') {
        let parts: Vec<&str> = seg.split('=').collect();
        match parts.as_slice() {
            [lvl] => default = level(lvl).ok_or_else(|| bad(seg))?,
            [names, lvl] => {
                let l = level(lvl).ok_or_else(|| bad(seg))?;
                for n in names.split(',') {
                    if !valid_logger(n) {
                        return Err(bad(seg));
                    }
                    loggers.push((n.to_string(), l));
                }
            }
            _ => return Err(bad(seg)),
        }
    }
    Ok(LogSpec {
        text: spec.to_string(),
        default,
        loggers,
    })
}

impl LogSpec {
    /// The `EnvFilter` directives of this spec (tracing picks the most specific target).
    pub fn directives(&self) -> String {
        let mut d = vec![self.default.to_string()];
        for (name, l) in &self.loggers {
            d.push(format!("{}={l}", logger_target(name)));
        }
        d.join(",")
    }

    fn filter(&self) -> Result<EnvFilter, SpecError> {
        EnvFilter::try_new(self.directives()).map_err(|e| SpecError(e.to_string()))
    }
}

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

struct Global {
    handle: Handle,
    spec: Mutex<String>,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

/// Installs the process's subscriber (text, or JSON when `format` is `json`). Calling it again
/// changes only the spec.
pub fn init(spec: &str, format: &str) -> Result<(), SpecError> {
    let parsed = parse_spec(if spec.is_empty() { "info" } else { spec })?;
    if GLOBAL.get().is_some() {
        return set_spec(&parsed.text);
    }
    let (filter, handle) = reload::Layer::new(parsed.filter()?);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if format == "json" {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    result.map_err(|e| SpecError(format!("installing the log subscriber: {e}")))?;
    let _ = GLOBAL.set(Global {
        handle,
        spec: Mutex::new(parsed.text),
    });
    Ok(())
}

/// The active spec (`info` if logging was never initialised).
pub fn spec() -> String {
    GLOBAL.get().map_or_else(
        || "info".to_string(),
        |g| g.spec.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    )
}

/// Activates a new spec (`/logspec` PUT).
pub fn set_spec(spec: &str) -> Result<(), SpecError> {
    let parsed = parse_spec(spec)?;
    let filter = parsed.filter()?;
    if let Some(g) = GLOBAL.get() {
        g.handle
            .reload(filter)
            .map_err(|e| SpecError(e.to_string()))?;
        *g.spec.lock().unwrap_or_else(|p| p.into_inner()) = parsed.text;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_like_fabrics() {
        let s = parse_spec("ordo.raft=debug:info").unwrap();
        assert_eq!(s.default, "info");
        assert_eq!(s.directives(), "info,ordo_raft=debug");
        let s = parse_spec("ordo.orderer.grpc,ordo.ledger=WARNING:error").unwrap();
        assert_eq!(
            s.directives(),
            "error,ordo_orderer::grpc=warn,ordo_ledger=warn"
        );
        assert_eq!(parse_spec("fatal").unwrap().default, "error");
        assert_eq!(logger_target("grpc.server"), "grpc::server");
        for bad in ["verbose", "a=b=c", "=debug", "x.=info", "info:"] {
            let e = parse_spec(bad).unwrap_err();
            assert!(
                e.0.starts_with("invalid logging specification"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn set_spec_refuses_a_bad_spec_and_keeps_the_old_one() {
        let before = spec();
        assert!(set_spec("nonsense=").is_err());
        assert_eq!(spec(), before);
    }
}
