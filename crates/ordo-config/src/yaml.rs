//! YAML configuration files read the way Fabric's Go code reads them (viper + mapstructure with
//! `EnhancedExactUnmarshal`): anchors and merge keys resolved, keys matched without regard to
//! case, keys nobody asked for refused, weak typing (numbers from strings and back), byte sizes
//! like `4 MB` and lists written as `"[a, b]"`. configtx.yaml and orderer.yaml both go through
//! [`Obj`].

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Why a YAML file could not be read; the text names the key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct YamlError(pub String);

fn err(m: impl Into<String>) -> YamlError {
    YamlError(m.into())
}

/// Parses YAML text into a JSON-like tree (anchors and merges resolved).
pub fn parse(text: &str) -> Result<Value, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| err(format!("could not parse YAML: {e}")))
}

/// A YAML mapping read the way mapstructure reads it for configtxgen: case-insensitive keys and
/// every key used.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: HashSet<String>,
}

impl<'a> Obj<'a> {
    pub fn new(v: &'a Value, path: &str) -> Result<Self, YamlError> {
        match v {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_string(),
                used: HashSet::new(),
            }),
            Value::Null => {
                static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
                Ok(Obj {
                    map: EMPTY.get_or_init(Map::new),
                    path: path.to_string(),
                    used: HashSet::new(),
                })
            }
            _ => Err(err(format!("{path}: expected a mapping"))),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))?;
        self.used.insert(k.clone());
        (!v.is_null()).then_some(v)
    }

    pub fn sub(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub fn string(&mut self, key: &str) -> Result<String, YamlError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(_) => Err(err(format!("{path}: expected a string"))),
        }
    }

    pub fn uint(&mut self, key: &str) -> Result<u64, YamlError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| err(format!("{path}: expected a non-negative integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| err(format!("{path}: expected an integer, got {s:?}"))),
            Some(_) => Err(err(format!("{path}: expected an integer"))),
        }
    }

    pub fn u32(&mut self, key: &str) -> Result<u32, YamlError> {
        let path = self.sub(key);
        u32::try_from(self.uint(key)?).map_err(|_| err(format!("{path}: value overflows uint32")))
    }

    /// A uint32 that may be written as a byte size (`4 MB`, `512 KB`).
    pub fn byte_size(&mut self, key: &str) -> Result<u32, YamlError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(0),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| err(format!("{path}: value '{n}' overflows uint32"))),
            Some(Value::String(s)) => parse_byte_size(s).map_err(|e| err(format!("{path}: {e}"))),
            Some(_) => Err(err(format!("{path}: expected a size"))),
        }
    }

    pub fn boolean(&mut self, key: &str) -> Result<bool, YamlError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(err(format!("{path}: expected a boolean"))),
        }
    }

    pub fn strings(&mut self, key: &str) -> Result<Vec<String>, YamlError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(err(format!("{path}: expected strings"))),
                })
                .collect(),
            // configtxgen's customDecodeHook accepts "[a, b]" as a list.
            Some(Value::String(s)) => Ok(s
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()),
            Some(_) => Err(err(format!("{path}: expected a list"))),
        }
    }

    pub fn array(&mut self, key: &str) -> Result<&'a [Value], YamlError> {
        let path = self.sub(key);
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(err(format!("{path}: expected a list"))),
        }
    }

    /// Refuses keys nobody asked for, as configtxgen's exact decoding does.
    pub fn finish(self) -> Result<(), YamlError> {
        let mut unused: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.used.contains(*k))
            .collect();
        unused.sort();
        if unused.is_empty() {
            Ok(())
        } else {
            Err(err(format!(
                "{} has invalid keys: {}",
                self.path,
                unused
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

/// configtxgen's byte sizes: an integer, or `<n> <k|m|g>[b]` in any case, in powers of 1024.
pub(crate) fn parse_byte_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("value '{s}' is not a size"));
    }
    let n: u64 = t[..digits]
        .parse()
        .map_err(|_| format!("value '{s}' overflows uint32"))?;
    let unit = t[digits..].trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => return Err(format!("value '{s}' is not a size")),
    };
    let v = n
        .checked_shl(shift)
        .filter(|v| *v >> shift == n)
        .unwrap_or(u64::MAX);
    u32::try_from(v).map_err(|_| format!("value '{s}' overflows uint32"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4 MB"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_byte_size("512 KB"), Ok(512 * 1024));
        assert_eq!(parse_byte_size("1m"), Ok(1024 * 1024));
        assert_eq!(parse_byte_size("99"), Ok(99));
        assert!(parse_byte_size("5 GB").is_err());
        assert!(parse_byte_size("5 TB").is_err());
        assert!(parse_byte_size("MB").is_err());
    }

    #[test]
    fn keys_are_case_insensitive_and_exact() {
        let v = parse("Foo: 1\nbar: [a, b]\nSize: 2 KB\n").unwrap();
        let mut o = Obj::new(&v, "root").unwrap();
        assert_eq!(o.uint("foo"), Ok(1));
        assert_eq!(o.strings("BAR"), Ok(vec!["a".to_string(), "b".to_string()]));
        assert!(o.finish().is_err());
        let mut o = Obj::new(&v, "root").unwrap();
        o.uint("foo").unwrap();
        o.strings("bar").unwrap();
        assert_eq!(o.byte_size("size"), Ok(2048));
        o.finish().unwrap();
    }
}
