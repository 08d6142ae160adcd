//! Timestamps as Windows logs and spawnwatch write them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses the timestamp forms seen in event logs:
/// - RFC 3339 with `T` or a space, up to 9 fractional digits, `Z` or an offset
///   (`2021-03-14T01:39:39.830Z`, `2022-05-13T08:54:08.42Z`, `2019-03-19T23:34:25.340612Z`,
///   `2026-11-27T10:00:00.123456789+01:00`);
/// - no zone at all, read as UTC: Sysmon's `UtcTime` (`2021-03-14 06:39:39.829`) and the
///   same with a `T`;
/// - an offset without a colon (`+0100`).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(t) = parse_utc_z(s.as_bytes()) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

/// The form nearly every record has (`2026-11-27T10:00:00.123Z`, `T` or a space, up to
/// nine fractional digits), read without chrono's general parser: a fifth of a
/// replay's per-event cost went there. Anything else (offsets, a leap second) is left
/// to the general forms.
fn parse_utc_z(s: &[u8]) -> Option<DateTime<Utc>> {
    let (head, fraction) = match s {
        [head @ .., b'Z'] if head.len() >= 19 => head.split_at(19),
        _ => return None,
    };
    let digits = |range: std::ops::Range<usize>| decimal(&head[range]);
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(i, c)| head[i] == c) || !matches!(head[10], b'T' | b' ') {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [b'.', rest @ ..] if (1..=9).contains(&rest.len()) => {
            decimal(rest)? * 10u32.pow(9 - rest.len() as u32)
        }
        _ => return None,
    };
    let second = digits(17..19)?;
    if second > 59 {
        return None;
    }
    NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?
        .and_hms_nano_opt(digits(11..13)?, digits(14..16)?, second, nanos)
        .map(|t| t.and_utc())
}

/// A time written as a number since 1970 (Elasticsearch's `epoch_millis`,
/// Velociraptor's `SystemTime` in seconds with a fraction), its unit told by its size:
/// seconds up to 10^11 (the year 5138), then milliseconds, microseconds, nanoseconds.
/// Kept to the microsecond: a double holds no more of a time since 1970.
pub(crate) fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let seconds = [1.0, 1e3, 1e6, 1e9]
        .into_iter()
        .map(|unit| n / unit)
        .find(|&seconds| seconds < 1e11)?;
    let whole = seconds.trunc();
    let micros = ((seconds - whole) * 1e6).round().min(999_999.0);
    DateTime::from_timestamp(whole as i64, micros as u32 * 1000)
}

/// The value of up to nine ASCII digits; `None` if any byte is not one.
fn decimal(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// How spawnwatch writes a timestamp: UTC, `Z`, milliseconds unless more digits are
/// needed to keep the value exact.
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    use chrono::{SecondsFormat, Timelike};
    let format = if t.nanosecond().is_multiple_of(1_000_000) {
        SecondsFormat::Millis
    } else {
        SecondsFormat::AutoSi
    };
    t.to_rfc3339_opts(format, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
            + chrono::Duration::nanoseconds(i64::from(nanos))
    }

    #[test]
    fn the_fast_form_agrees_with_chrono() {
        let mut checked = 0;
        for date in [
            "2026-11-27",
            "2024-02-29",
            "2023-02-29",
            "0001-01-01",
            "9999-12-31",
            "2026-13-01",
            "2026-1x-01",
        ] {
            for sep in ["T", " ", "t", "_"] {
                for time in [
                    "10:00:00", "23:59:59", "24:00:00", "10:60:00", "10:00:60", "1:00:00",
                ] {
                    for fraction in ["", ".1", ".123", ".123456789", ".1234567891", ".", ".12a"] {
                        for zone in ["Z", "z", "+00:00", ""] {
                            let s = format!("{date}{sep}{time}{fraction}{zone}");
                            let general = DateTime::parse_from_rfc3339(&s)
                                .ok()
                                .map(|t| t.with_timezone(&Utc));
                            if let Some(fast) = parse_utc_z(s.as_bytes()) {
                                assert_eq!(Some(fast), general, "{s}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        // Valid dates x separators x times x fractions, with `Z`.
        assert_eq!(checked, 4 * 2 * 2 * 4);
    }

    #[test]
    fn rfc3339_forms() {
        let t = utc(2021, 3, 14, 1, 39, 39, 830_000_000);
        assert_eq!(parse_time("2021-03-14T01:39:39.830Z"), Some(t));
        assert_eq!(parse_time("2021-03-14 01:39:39.830Z"), Some(t));
        assert_eq!(parse_time("2021-03-14T01:39:39.83Z"), Some(t));
        assert_eq!(parse_time("2021-03-14T02:39:39.830+01:00"), Some(t));
        assert_eq!(parse_time("2021-03-14T02:39:39.830+0100"), Some(t));
        assert_eq!(
            parse_time("2019-03-19T23:34:25.340612Z"),
            Some(utc(2019, 3, 19, 23, 34, 25, 340_612_000))
        );
        assert_eq!(
            parse_time("2026-11-27T10:00:00.123456789Z"),
            Some(utc(2026, 11, 27, 10, 0, 0, 123_456_789))
        );
        assert_eq!(
            parse_time("2026-11-27T10:00:00Z"),
            Some(utc(2026, 11, 27, 10, 0, 0, 0))
        );
        // Sentinel writes .NET's seven digits.
        assert_eq!(
            parse_time("2022-05-13T08:54:08.4200000Z"),
            Some(utc(2022, 5, 13, 8, 54, 8, 420_000_000))
        );
    }

    #[test]
    fn sysmon_utc_time_without_zone_is_utc() {
        let t = utc(2021, 3, 14, 6, 39, 39, 829_000_000);
        assert_eq!(parse_time("2021-03-14 06:39:39.829"), Some(t));
        assert_eq!(parse_time("2021-03-14T06:39:39.829"), Some(t));
        assert_eq!(
            parse_time("2021-03-14 06:39:39"),
            Some(utc(2021, 3, 14, 6, 39, 39, 0))
        );
    }

    #[test]
    fn epoch_numbers_in_every_unit() {
        let t = utc(2024, 6, 2, 12, 41, 3, 117_000_000);
        for n in [
            1_717_332_063.117,
            1_717_332_063_117.0,
            1_717_332_063_117_000.0,
        ] {
            assert_eq!(from_epoch(n), Some(t), "{n}");
        }
        assert_eq!(
            from_epoch(1_717_332_063_117_000_000.0).map(|t| t.timestamp()),
            Some(t.timestamp())
        );
        assert_eq!(from_epoch(-1.0), None);
        assert_eq!(from_epoch(f64::NAN), None);
        assert_eq!(from_epoch(1e30), None);
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "",
            "-",
            "yesterday",
            "2021-13-14 06:39:39",
            "2021-03-14",
            "1615703979",
        ] {
            assert_eq!(parse_time(s), None, "{s}");
        }
    }

    #[test]
    fn format_keeps_the_value() {
        for t in [
            utc(2026, 11, 27, 10, 0, 0, 123_000_000),
            utc(2026, 11, 27, 10, 0, 1, 0),
            utc(2026, 11, 27, 10, 0, 1, 123_456_789),
            utc(2026, 11, 27, 10, 0, 1, 1_000),
        ] {
            assert_eq!(parse_time(&format_time(&t)), Some(t));
        }
        assert_eq!(
            format_time(&utc(2026, 11, 27, 10, 0, 0, 123_000_000)),
            "2026-11-27T10:00:00.123Z"
        );
        assert_eq!(
            format_time(&utc(2026, 11, 27, 10, 0, 1, 0)),
            "2026-11-27T10:00:01.000Z"
        );
    }
}
