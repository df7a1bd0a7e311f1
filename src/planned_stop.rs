//! The planned-stop marker (doc/design.md#state-files): before a stop sends
//! SIGTERM, the stopper writes `.gateway-planned-stop.json` into the
//! gateway's home; a gateway that finds it (pid matching, start time
//! matching when both are known, at most 60 s old) exits 0, and the slot's
//! `finish` then parks it instead of restarting it. Without the marker the
//! gateway takes the SIGTERM for a crash, exits 1, and records `running`.
//!
//! The record: `{"target_pid":N,"target_start_time":T,"stopper_pid":M,
//! "written_at":"<ISO 8601 UTC>"}`; `target_start_time` is field 22 of
//! `/proc/<pid>/stat` (clock ticks since boot, what the gateway records as
//! its own `start_time`), `null` when unreadable. It goes into the target
//! profile's home, which is where that gateway looks (upstream wrote it
//! into the stopper's home, wrong for `stop --all`: #103772).

use std::ffi::OsStr;
use std::time::Duration;

use crate::error::Result;
use crate::fs::publish::replace_file;
use crate::fs::{Dir, Owner};

/// The marker's name in a profile home.
pub const MARKER: &str = ".gateway-planned-stop.json";

/// The marker's text, one line.
pub fn record(target_pid: u64, target_start_time: Option<u64>, stopper_pid: u32, now: Duration) -> String {
    let start = target_start_time.map_or("null".to_string(), |t| t.to_string());
    format!(
        "{{\"target_pid\":{target_pid},\"target_start_time\":{start},\"stopper_pid\":{stopper_pid},\"written_at\":\"{}\"}}\n",
        iso_utc(now)
    )
}

/// Writes the marker for `target_pid` into `home` (replacing an older
/// one), atomically.
pub fn write(home: &Dir, target_pid: u64, now: Duration, owner: Owner) -> Result<()> {
    let text = record(target_pid, start_time(target_pid), std::process::id(), now);
    replace_file(home, OsStr::new(MARKER), &text, 0o644, owner)
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock
/// ticks since boot. `None` if the process is gone or not visible.
pub fn start_time(pid: u64) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// The start time in a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may hold spaces and parentheses itself: the
/// fields are counted from the last `)`.
fn parse_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ")": field 3 (state) is the first, so field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// `now` (since the Unix epoch) as Python's
/// `datetime.now(timezone.utc).isoformat()` prints it:
/// `2026-11-26T10:27:16.123456+00:00`.
fn iso_utc(now: Duration) -> String {
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}+00:00", rem / 3600, rem % 3600 / 60, rem % 60, now.subsec_micros())
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(Duration::new(0, 0)), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(iso_utc(Duration::new(951_782_400, 5_000)), "2000-02-29T00:00:00.000005+00:00");
        assert_eq!(iso_utc(Duration::new(1_795_688_955, 123_456_789)), "2026-11-26T10:29:15.123456+00:00");
        assert_eq!(iso_utc(Duration::new(4_102_444_799, 0)), "2099-12-31T23:59:59.000000+00:00");
    }

    #[test]
    fn start_time_is_field_22_counted_from_the_last_parenthesis() {
        let line = b"4242 (we ird) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200\n";
        assert_eq!(parse_start_time(line), Some(987654));
        assert_eq!(parse_start_time(b"1 (init) S 0"), None);
        assert_eq!(parse_start_time(b"garbage"), None);
        let own = start_time(std::process::id() as u64);
        assert!(own.is_some_and(|t| t > 0), "{own:?}");
    }

    #[test]
    fn the_record() {
        assert_eq!(
            record(9090, Some(123), 77, Duration::new(0, 0)),
            "{\"target_pid\":9090,\"target_start_time\":123,\"stopper_pid\":77,\"written_at\":\"1970-01-01T00:00:00.000000+00:00\"}\n"
        );
        assert!(record(1, None, 2, Duration::ZERO).contains("\"target_start_time\":null"));
        let v: serde_json::Value = serde_json::from_str(&record(1, None, 2, Duration::ZERO)).unwrap();
        assert_eq!(v["target_pid"], 1);
    }
}
