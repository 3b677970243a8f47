//! Dates: `x-amz-date` from the clock, and the date of a credential scope.

use super::error::SigV4Error;

/// (year, month, day) of a count of days since 1970-01-01 (proleptic Gregorian calendar).
///
/// Howard Hinnant's `civil_from_days`. `days` is at most `u64::MAX / 86400`, so nothing here
/// can overflow an `i64`.
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = if m <= 2 { y + 1 } else { y };
    // d in [1, 31] and m in [1, 12]: the conversions cannot fail.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

pub(super) fn push_2(out: &mut String, n: u32) {
    out.push(char::from(b'0' + ((n / 10) % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch (UTC).
///
/// Years past 9999 (more than ~253 billion seconds) print with more than four digits; such a
/// string is not a valid `x-amz-date` and [`sign`] rejects it with [`SigV4Error::BadDate`].
pub fn format_amz_date(unix_secs: u64) -> String {
    let mut out = String::with_capacity(16);
    push_amz_date(&mut out, unix_secs);
    out
}

/// [`format_amz_date`], appended to `out`.
pub fn push_amz_date(out: &mut String, unix_secs: u64) {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX / 2);
    let secs_of_day = u32::try_from(unix_secs % 86_400).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    if (0..10_000).contains(&year) {
        let y = u32::try_from(year).unwrap_or(0);
        push_2(out, y / 100);
        push_2(out, y % 100);
    } else {
        out.push_str(&year.to_string());
    }
    push_2(out, month);
    push_2(out, day);
    out.push('T');
    push_2(out, secs_of_day / 3600);
    push_2(out, (secs_of_day / 60) % 60);
    push_2(out, secs_of_day % 60);
    out.push('Z');
}

/// The `YYYYMMDD` part of a valid `YYYYMMDDTHHMMSSZ`.
pub(super) fn date_of(amz_date: &str) -> Result<&str, SigV4Error> {
    let b = amz_date.as_bytes();
    let ok = b.len() == 16
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 => c == b'T',
            15 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !ok {
        return Err(SigV4Error::BadDate);
    }
    amz_date.get(..8).ok_or(SigV4Error::BadDate)
}
