//! Go's `time.ParseDuration` and `Duration.String`, because Fabric stores durations as Go
//! strings (`BatchTimeout`, `TickInterval`) and validates them with Go's grammar: an optional
//! sign, then one or more `<decimal><unit>` with units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`;
//! the bare `0` is allowed.

/// A parse failure, with Go's message (`time: invalid duration "abc"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{00b5}s", 1_000),
    ("\u{03bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration into nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError(format!("time: invalid duration {s:?}"));
    let mut rest = s;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_str, after) = rest.split_at(int_len);
        let mut frac_str = "";
        let mut after = after;
        if let Some(a) = after.strip_prefix('.') {
            let n = a.bytes().take_while(u8::is_ascii_digit).count();
            frac_str = &a[..n];
            after = &a[n..];
        }
        if int_str.is_empty() && frac_str.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let unit = &after[..unit_len];
        if unit.is_empty() {
            return Err(DurationError(format!(
                "time: missing unit in duration {s:?}"
            )));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError(format!(
                "time: unknown unit {unit:?} in duration {s:?}"
            )));
        };
        let int: u64 = if int_str.is_empty() {
            0
        } else {
            int_str.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(scale).ok_or_else(invalid)?;
        // Fraction: Go keeps as many digits as fit, truncating the rest.
        let mut frac_scale = scale as f64;
        let mut frac_val = 0f64;
        for d in frac_str.bytes() {
            frac_scale /= 10.0;
            frac_val += f64::from(d - b'0') * frac_scale;
        }
        v = v.checked_add(frac_val as u64).ok_or_else(invalid)?;
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u64 {
            return Err(invalid());
        }
        rest = &after[unit_len..];
    }
    let total = total as i64;
    Ok(if neg { -total } else { total })
}

/// Go's `Duration.String` (`1m30s`, `250ms`, `0s`), used in Fabric's messages.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let body = if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        format!("{}{unit}", frac(u, scale))
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let s_ns = u % 60_000_000_000;
        let secs = format!("{}s", frac(s_ns, 1_000_000_000));
        if h > 0 {
            format!("{h}h{m}m{secs}")
        } else if m > 0 {
            format!("{m}m{secs}")
        } else {
            secs
        }
    };
    if neg { format!("-{body}") } else { body }
}

/// `v / scale` printed with the fractional digits Go prints (trailing zeros dropped).
fn frac(v: u64, scale: u64) -> String {
    let int = v / scale;
    let rem = v % scale;
    if rem == 0 {
        return int.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        assert_eq!(parse_go_duration("1s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-2s"), Ok(-2_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("10µs"), Ok(10_000));
        assert_eq!(parse_go_duration("3us2ns"), Ok(3_002));
        for bad in [
            "",
            "abc",
            "1",
            "s",
            "1x",
            "-",
            ".s",
            "1.s2",
            "99999999999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_duration("abc").unwrap_err().0,
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_go_duration("5").unwrap_err().0,
            "time: missing unit in duration \"5\""
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(1_000_000_000), "1s");
        assert_eq!(format_go_duration(250_000_000), "250ms");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_go_duration(-2_000_000_000), "-2s");
        assert_eq!(format_go_duration(1_500), "1.5µs");
    }
}
