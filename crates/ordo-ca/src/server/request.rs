//! Turning a request's raw parts into typed values: the JSON body into an endpoint's request
//! struct, the query string, percent-encoded path segments, and RFC 3339 timestamps.
//!
//! Fabric CA decodes bodies with Go's `encoding/json` into typed structs, and this module keeps
//! the two behaviours of that decoding which clients rely on: top-level keys match their field
//! case-insensitively (`CAName` is `caname`), and `null` leaves a field at its zero value. A
//! value of the wrong type is a bad request (400, code 5) naming the field.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{CaError, ErrorCode};

/// Checks that a body is a JSON object or `null` (the only shapes of Fabric CA's request bodies)
/// and puts its top-level keys in ASCII lower case, the first of several spellings winning, then
/// drops `null` members so that a request struct's defaults apply to them.
pub(super) fn normalize_body(body: &[u8]) -> Result<Value, CaError> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) => return Ok(Value::Null),
        Ok(_) => {
            return Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                "Invalid request body: not a JSON object",
            ));
        }
        Err(e) => {
            return Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                format!("Invalid request body: {e}"),
            ));
        }
    };
    let mut out = Map::new();
    for (k, v) in map {
        out.entry(k.to_ascii_lowercase()).or_insert(v);
    }
    out.retain(|_, v| !v.is_null());
    Ok(Value::Object(out))
}

/// Decodes a normalized body into `T`, whose fields are named in lower case and all default
/// (`#[serde(default)]`): an absent body is `T::default()`.
pub(super) fn decode<T: DeserializeOwned + Default>(body: &Value) -> Result<T, CaError> {
    let Value::Object(map) = body else {
        return Ok(T::default());
    };
    T::deserialize(body).map_err(|e| {
        // Name the offending field: the first member that fails on its own. Every field has a
        // default, so a member alone decodes unless its own value is wrong.
        let field = map.iter().find(|(k, v)| {
            let alone = Map::from_iter([((*k).clone(), (*v).clone())]);
            T::deserialize(&Value::Object(alone)).is_err()
        });
        let message = match field {
            Some((k, _)) => format!("Invalid request body: field '{k}': {e}"),
            None => format!("Invalid request body: {e}"),
        };
        CaError::bad_request(ErrorCode::BadReqBody, message)
    })
}

/// Percent-decoding of a path segment or query component; invalid escapes stay as they are and
/// invalid UTF-8 becomes U+FFFD, so any input decodes.
pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as a map (`+` is a space in values, as in forms).
pub(super) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// RFC 3339 (`2006-01-02T15:04:05Z07:00`, optional fraction) to Unix seconds. Every slice is
/// taken with `get`: the text comes from clients and may hold multi-byte characters anywhere.
pub(super) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = r.get(n..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.get(3..4) == Some(":") => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Req {
        id: String,
        #[serde(rename = "type")]
        id_type: String,
        max_enrollments: i64,
        force: bool,
        hosts: Option<Vec<String>>,
    }

    fn decoded(body: &str) -> Result<Req, (u16, ErrorCode, String)> {
        normalize_body(body.as_bytes())
            .and_then(|v| decode::<Req>(&v))
            .map_err(|e| e.remote())
    }

    #[test]
    fn body_fields_match_case_insensitively_and_null_is_absent() {
        let r = decoded(r#"{"ID": "a", "Type": null, "MAX_enrollments": 3, "other": [1]}"#);
        assert_eq!(
            r,
            Ok(Req {
                id: "a".into(),
                max_enrollments: 3,
                ..Req::default()
            })
        );
        // The first spelling of a key wins, in document order.
        assert_eq!(
            decoded(r#"{"Id": "first", "id": "second"}"#).map(|r| r.id),
            Ok("first".into())
        );
        // An absent body, an empty one and `null` are all the default request.
        assert_eq!(decoded(""), Ok(Req::default()));
        assert_eq!(decoded("null"), Ok(Req::default()));
        assert_eq!(decoded("{}"), Ok(Req::default()));
        assert_eq!(
            decoded(r#"{"hosts": []}"#).map(|r| r.hosts),
            Ok(Some(vec![]))
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests_naming_the_field() {
        for (body, field) in [
            (r#"{"id": 5}"#, "id"),
            (r#"{"id": "j", "type": 3}"#, "type"),
            (r#"{"max_enrollments": 1.5}"#, "max_enrollments"),
            (r#"{"max_enrollments": "many"}"#, "max_enrollments"),
            (r#"{"force": "yes"}"#, "force"),
            (r#"{"hosts": "x"}"#, "hosts"),
            (r#"{"hosts": [1]}"#, "hosts"),
        ] {
            let (status, code, message) = decoded(body).unwrap_err();
            assert_eq!((status, code), (400, ErrorCode::BadReqBody), "{body}");
            assert!(
                message.starts_with(&format!("Invalid request body: field '{field}': ")),
                "{body}: {message}"
            );
        }
        for body in ["[]", "7", "\"x\"", "{", "\u{0}"] {
            let (status, code, message) = decoded(body).unwrap_err();
            assert_eq!((status, code), (400, ErrorCode::BadReqBody), "{body}");
            assert!(message.starts_with("Invalid request body: "), "{message}");
        }
    }

    #[test]
    fn query_and_path_decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
        assert_eq!(percent_decode("%E9"), "\u{FFFD}");
        let q = parse_query(Some("force=true&id=a+b%21&flag"));
        assert_eq!(q.get("force").map(String::as_str), Some("true"));
        assert_eq!(q.get("id").map(String::as_str), Some("a b!"));
        assert_eq!(q.get("flag").map(String::as_str), Some(""));
        assert!(parse_query(None).is_empty());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5+01:00"),
            Some(1_709_204_400)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        // Multi-byte characters where ASCII is expected are refused, not a panic.
        assert_eq!(parse_rfc3339("2024-02-29T12:00:0é+01:00"), None);
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00é1:00"), None);
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.9é"), None);
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00+0é:0"), None);
    }
}
