//! Local time, formatted as the boot log writes it (Python's
//! `datetime.now().astimezone().strftime(...)` in upstream's reconcile).

/// `epoch` as local time, `YYYY-MM-DDTHH:MM:SS+HHMM` (strftime's
/// `%Y-%m-%dT%H:%M:%S%z`), from the TZ variable or /etc/localtime.
pub fn local_timestamp(epoch: i64) -> String {
    // (time_t's width is the C library's: inferred from localtime_r.)
    let t = epoch as _;
    // SAFETY: an all-zero tm is a valid value; localtime_r fills it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return format!("@{epoch}");
    }
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{sign}{:02}{:02}",
        tm.tm_year as i64 + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off / 3600,
        off % 3600 / 60
    )
}
