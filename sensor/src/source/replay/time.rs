//! Timestamps as Windows logs and spawnwatch write them.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses the timestamp forms seen in event logs:
/// - RFC 3339 with `T` or a space, up to 9 fractional digits, `Z` or an offset
///   (`2021-03-14T01:39:39.830Z`, `2022-05-13T08:54:08.42Z`, `2019-03-19T23:34:25.340612Z`,
///   `2026-11-27T10:00:00.123456789+01:00`);
/// - no zone at all, read as UTC: Sysmon's `UtcTime` (`2021-03-14 06:39:39.829`) and the
///   same with a `T`;
/// - an offset without a colon (`+0100`).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
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
