//! FILETIME (100 ns intervals since 1601-01-01 UTC) to `DateTime<Utc>`.
//!
//! ferrisetw 1.2.0's own conversions combine the high 32 bits wrongly, so the raw u64 is
//! converted here. Zero (a field the event did not carry) and values chrono cannot
//! represent give `None`; nothing here panics.

use chrono::{DateTime, Utc};

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
pub const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// A FILETIME as a UTC time; `None` for 0 or out of range.
pub fn filetime_to_utc(filetime: u64) -> Option<DateTime<Utc>> {
    if filetime == 0 {
        return None;
    }
    let unix_100ns = i128::from(filetime) - i128::from(FILETIME_UNIX_EPOCH);
    let secs = i64::try_from(unix_100ns.div_euclid(10_000_000)).ok()?;
    let nanos = u32::try_from(unix_100ns.rem_euclid(10_000_000) * 100).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_and_a_known_instant() {
        assert_eq!(
            filetime_to_utc(FILETIME_UNIX_EPOCH).unwrap().to_rfc3339(),
            "1970-01-01T00:00:00+00:00"
        );
        // 2024-03-01T12:34:56.789Z: (1709296496 s * 10^7 + 7_890_000) + epoch offset
        let ft = 1_709_296_496u64 * 10_000_000 + 7_890_000 + FILETIME_UNIX_EPOCH;
        assert_eq!(
            filetime_to_utc(ft).unwrap().to_rfc3339(),
            "2024-03-01T12:34:56.789+00:00"
        );
        // the high 32 bits matter (the ferrisetw 1.2.0 bug mixes them up)
        let high = (ft >> 32) << 32;
        assert_ne!(filetime_to_utc(high), filetime_to_utc(ft));
    }

    #[test]
    fn zero_before_epoch_and_out_of_range() {
        assert_eq!(filetime_to_utc(0), None);
        assert_eq!(
            filetime_to_utc(1).unwrap().to_rfc3339(),
            "1601-01-01T00:00:00.000000100+00:00"
        );
        assert!(filetime_to_utc(u64::MAX).is_some_and(|t| t.timestamp() > 0));
        assert_eq!(
            filetime_to_utc(FILETIME_UNIX_EPOCH + 10_000_000)
                .unwrap()
                .timestamp(),
            1
        );
    }
}
