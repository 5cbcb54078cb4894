//! Billing periods: calendar months (UTC) by default, or fixed lengths
//! aligned to the Unix epoch (short ones make tests and demos fast).

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodLength {
    CalendarMonth,
    Seconds(i64),
}

impl PeriodLength {
    /// `0`: calendar months; otherwise that many seconds.
    pub fn from_secs(secs: u64) -> Self {
        match i64::try_from(secs) {
            Ok(0) | Err(_) => PeriodLength::CalendarMonth,
            Ok(s) => PeriodLength::Seconds(s),
        }
    }

    /// The period `[start, end)` that contains `t`.
    pub fn containing(self, t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            PeriodLength::CalendarMonth => {
                let start = month_start(t.year(), t.month());
                let end = if t.month() == 12 {
                    month_start(t.year() + 1, 1)
                } else {
                    month_start(t.year(), t.month() + 1)
                };
                (start, end)
            }
            PeriodLength::Seconds(len) => {
                let s = t.timestamp().div_euclid(len) * len;
                let start = DateTime::from_timestamp(s, 0).unwrap_or(t);
                (start, start + Duration::seconds(len))
            }
        }
    }

    /// The last period that ended at or before `now`.
    pub fn previous(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let (start, _) = self.containing(now);
        self.containing(start - Duration::microseconds(1))
    }

    /// How often a closer looks for ended periods.
    pub fn check_every(self) -> std::time::Duration {
        match self {
            PeriodLength::CalendarMonth => std::time::Duration::from_secs(60),
            PeriodLength::Seconds(s) => std::time::Duration::from_millis(
                (u64::try_from(s).unwrap_or(1) * 250).clamp(250, 60_000),
            ),
        }
    }
}

fn month_start(year: i32, month: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn months_and_fixed_lengths() {
        let m = PeriodLength::from_secs(0);
        assert_eq!(
            m.containing(at("2026-12-31T23:59:59Z")),
            (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            m.previous(at("2026-01-15T00:00:00Z")),
            (at("2025-12-01T00:00:00Z"), at("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            m.previous(at("2026-03-01T00:00:00Z")),
            (at("2026-02-01T00:00:00Z"), at("2026-03-01T00:00:00Z"))
        );
        let h = PeriodLength::from_secs(3600);
        assert_eq!(
            h.containing(at("2026-11-28T10:59:59Z")),
            (at("2026-11-28T10:00:00Z"), at("2026-11-28T11:00:00Z"))
        );
        assert_eq!(
            h.previous(at("2026-11-28T11:00:00Z")),
            (at("2026-11-28T10:00:00Z"), at("2026-11-28T11:00:00Z"))
        );
        // Before the epoch too (floor, not truncation).
        assert_eq!(
            PeriodLength::from_secs(7)
                .containing(at("1969-12-31T23:59:59Z"))
                .0,
            at("1969-12-31T23:59:53Z")
        );
    }
}
