//! `google.protobuf.Timestamp` as text, exactly as configtxlator's jsonpb writes and reads it.
//!
//! Output is always UTC, `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z`, with the shortest of 0, 3, 6 or 9
//! fraction digits that is exact. Seconds are not range-checked by jsonpb, so values far outside
//! years 0–9999 are printed too; to print those exactly as Go does (Go's calendar arithmetic wraps
//! around at the extremes) the date is computed with Go's own day-counting scheme rather than a
//! textbook civil-date algorithm. Both agree on every ordinary date.

const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
/// Go counts days from this year (it is 1 mod 400, so 400-year cycles line up).
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
/// Seconds from Go's absolute zero to the Unix epoch, modulo 2^64 as Go computes it.
const UNIX_TO_ABSOLUTE: i64 = 9_223_372_028_715_321_600_u64 as i64;
/// Days before the first of each month in a non-leap year (index 12 is the whole year).
const DAYS_BEFORE: [u64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Formats a timestamp; `Err` carries jsonpb's complaint when `nanos` is outside `[0, 1e9)`.
pub(crate) fn format(seconds: i64, nanos: i32) -> Result<String, String> {
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(format!(
            "timestamp nanos {nanos} out of range [0, 1000000000)"
        ));
    }
    let abs = seconds.wrapping_add(UNIX_TO_ABSOLUTE) as u64;
    let (year, month, day) = date(abs);
    let mut clock = abs % SECONDS_PER_DAY;
    let hour = clock / 3600;
    clock -= hour * 3600;
    let minute = clock / 60;
    let second = clock - minute * 60;

    let sign = if year < 0 { "-" } else { "" };
    let mut out = format!(
        "{sign}{:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}",
        year.unsigned_abs()
    );
    if nanos != 0 {
        let mut fraction = format!("{nanos:09}");
        // Keep 3, 6 or 9 digits: drop trailing groups of three zeros.
        while fraction.len() > 3 && fraction.ends_with("000") {
            fraction.truncate(fraction.len() - 3);
        }
        out.push('.');
        out.push_str(&fraction);
    }
    out.push('Z');
    Ok(out)
}

/// Year, month and day of a count of seconds since Go's absolute zero.
fn date(abs: u64) -> (i64, u64, u64) {
    let mut d = abs / SECONDS_PER_DAY;

    let n = d / DAYS_PER_400_YEARS;
    let mut y = 400 * n;
    d -= DAYS_PER_400_YEARS * n;

    // A 400-year cycle has four 100-year cycles, the last one a day longer; `n >> 2` corrects the
    // count on that last day. The same trick applies to 4-year cycles below.
    let mut n = d / DAYS_PER_100_YEARS;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100_YEARS * n;

    let n = d / DAYS_PER_4_YEARS;
    y += 4 * n;
    d -= DAYS_PER_4_YEARS * n;

    let mut n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;

    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let mut day_of_year = d;
    if is_leap(year) {
        match day_of_year.cmp(&(31 + 29 - 1)) {
            std::cmp::Ordering::Greater => day_of_year -= 1,
            std::cmp::Ordering::Equal => return (year, 2, 29),
            std::cmp::Ordering::Less => {}
        }
    }
    // Guess the month as if all had 31 days; the guess is at most one month short. The day of the
    // year is at most 365 here, so the indices below stay within the table.
    let mut month = (day_of_year / 31).min(11);
    let end = DAYS_BEFORE[month as usize + 1];
    let begin = if day_of_year >= end {
        month += 1;
        end
    } else {
        DAYS_BEFORE[month as usize]
    };
    (year, month + 1, day_of_year - begin + 1)
}

/// Parses RFC 3339 text (any offset, any number of fraction digits) as Go's `time.Parse` with
/// `time.RFC3339Nano` does, returning Unix seconds and nanoseconds.
pub(crate) fn parse(text: &str) -> Result<(i64, i32), String> {
    let bad = || format!("bad Timestamp: cannot parse {text:?} as RFC 3339");
    let mut p = Cursor {
        rest: text.as_bytes(),
    };
    let year = p.digits(4).ok_or_else(bad)?;
    p.literal(b'-').ok_or_else(bad)?;
    let month = p.digits(2).ok_or_else(bad)?;
    p.literal(b'-').ok_or_else(bad)?;
    let day = p.digits(2).ok_or_else(bad)?;
    p.literal(b'T').ok_or_else(bad)?;
    // Go's layout "15" accepts a one- or two-digit hour.
    let hour = p.digits(2).or_else(|| p.digits(1)).ok_or_else(bad)?;
    p.literal(b':').ok_or_else(bad)?;
    let minute = p.digits(2).ok_or_else(bad)?;
    p.literal(b':').ok_or_else(bad)?;
    let second = p.digits(2).ok_or_else(bad)?;

    let mut nanos: i64 = 0;
    if let [b'.' | b',', d, ..] = p.rest
        && d.is_ascii_digit()
    {
        p.rest = &p.rest[1..];
        let count = p.rest.iter().take_while(|c| c.is_ascii_digit()).count();
        // Digits past the ninth are read but ignored.
        for (i, c) in p.rest[..count].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + i64::from(c - b'0');
            }
        }
        for _ in count..9 {
            nanos *= 10;
        }
        p.rest = &p.rest[count..];
    }

    let offset = match p.rest.first() {
        Some(b'Z') => {
            p.rest = &p.rest[1..];
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            p.rest = &p.rest[1..];
            let hh = p.digits(2).ok_or_else(bad)?;
            p.literal(b':').ok_or_else(bad)?;
            let mm = p.digits(2).ok_or_else(bad)?;
            let off = (hh * 60 + mm) * 60;
            if sign == b'-' { -off } else { off }
        }
        _ => return Err(bad()),
    };
    if !p.rest.is_empty() {
        return Err(format!("bad Timestamp: extra text after {text:?}"));
    }

    let range = |what: &str| format!("bad Timestamp: {what} out of range in {text:?}");
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    if hour > 23 {
        return Err(range("hour"));
    }
    if minute > 59 {
        return Err(range("minute"));
    }
    if second > 59 {
        return Err(range("second"));
    }
    let month_len = match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=month_len).contains(&day) {
        return Err(range("day"));
    }

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    // nanos < 1e9 by construction.
    Ok((seconds, nanos as i32))
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar (years 0–9999 here).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let chunk = self.rest.get(..n)?;
        if !chunk.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // A following digit means the field is longer than `n` (e.g. a three-digit hour).
        if n < 2 && self.rest.get(n).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        self.rest = &self.rest[n..];
        Some(
            chunk
                .iter()
                .fold(0, |acc, c| acc * 10 + i64::from(c - b'0')),
        )
    }

    fn literal(&mut self, c: u8) -> Option<()> {
        let (&first, rest) = self.rest.split_first()?;
        (first == c).then(|| self.rest = rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_jsonpb() {
        assert_eq!(format(0, 0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(format(1, 500_000_000).unwrap(), "1970-01-01T00:00:01.500Z");
        assert_eq!(format(1, 1_000).unwrap(), "1970-01-01T00:00:01.000001Z");
        assert_eq!(format(1, 1).unwrap(), "1970-01-01T00:00:01.000000001Z");
        assert_eq!(format(-100, 0).unwrap(), "1969-12-31T23:58:20Z");
        assert_eq!(
            format(1_795_333_380, 504_860_112).unwrap(),
            "2026-11-22T07:43:00.504860112Z"
        );
        assert_eq!(format(951_782_400, 0).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(format(253_402_300_799, 0).unwrap(), "9999-12-31T23:59:59Z");
        assert_eq!(format(253_402_300_800, 0).unwrap(), "10000-01-01T00:00:00Z");
        assert_eq!(format(-62_135_596_801, 0).unwrap(), "0000-12-31T23:59:59Z");
        assert_eq!(format(-62_198_755_200, 0).unwrap(), "-0001-01-01T00:00:00Z");
        assert!(format(0, -1).is_err());
        assert!(format(0, 1_000_000_000).is_err());
        // The extremes must not panic, whatever they print.
        assert!(format(i64::MAX, 999_999_999).is_ok());
        assert!(format(i64::MIN, 0).is_ok());
    }

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok((0, 0)));
        assert_eq!(
            parse("2020-01-01T00:00:00.5+01:00"),
            Ok((1_577_833_200, 500_000_000))
        );
        assert_eq!(parse("1970-01-01T00:00:01.0000000019Z"), Ok((1, 1)));
        assert_eq!(parse("1970-01-01T1:00:00,25Z"), Ok((3600, 250_000_000)));
        assert_eq!(parse("1969-12-31T23:58:20-00:00"), Ok((-100, 0)));
        for bad in [
            "",
            "1970-01-01",
            "1970-01-01t00:00:00Z",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00:00z",
            "1970-02-30T00:00:00Z",
            "1970-13-01T00:00:00Z",
            "1970-01-01T24:00:00Z",
            "1970-01-01T00:00:60Z",
            "1970-01-01T00:00:00Zjunk",
            "1970-01-01T00:00:00+0100",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn format_and_parse_agree_over_a_range_of_dates() {
        for seconds in (-62_135_596_800_i64..253_402_300_799).step_by(7_777_777_777) {
            let text = format(seconds, 120_000_000).unwrap();
            assert_eq!(parse(&text), Ok((seconds, 120_000_000)), "{text}");
        }
    }
}
