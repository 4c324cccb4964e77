//! The timestamps of log lines, in UTC: RFC 3339 with milliseconds for `json`
//! (`2026-12-01T23:02:31.042Z`) and nginx's `$time_local` for `combined`
//! (`01/Dec/2026:23:02:31 +0000`). The calendar fields come from the `time` crate; a wall
//! clock outside its range (years ±9999) is written as the Unix epoch rather than panic.
//!
//! Each thread keeps the text of the last second it wrote (as nginx caches its time strings),
//! so a line costs the calendar arithmetic once per second and thread, not once per line.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// The first second of year 10000: later times are out of `time`'s range.
const YEAR_10000: u64 = 253_402_300_800;

thread_local! {
    /// `(second since the epoch, "YYYY-MM-DDTHH:MM:SS")` last written by this thread.
    static RFC3339_SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    /// `(second since the epoch, "DD/Mon/YYYY:HH:MM:SS +0000")` last written by this thread.
    static NGINX_SECOND: Cell<(u64, [u8; 26])> = const { Cell::new((u64::MAX, [0; 26])) };
}

/// The text of `t`'s second from `cache`, made by `write` (into an empty buffer) when the
/// cache holds another second; `None` for a time before the epoch or after year 9999.
fn cached_second<const N: usize>(
    cache: &'static std::thread::LocalKey<Cell<(u64, [u8; N])>>,
    t: SystemTime,
    write: fn(&mut Vec<u8>, SystemTime),
) -> Option<([u8; N], u32)> {
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    let secs = d.as_secs();
    if secs >= YEAR_10000 {
        return None;
    }
    let ms = d.subsec_millis();
    let text = cache.with(|c| {
        let (cached, text) = c.get();
        if cached == secs {
            return Some(text);
        }
        let mut v = Vec::with_capacity(N);
        write(&mut v, UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let text: [u8; N] = v.try_into().ok()?;
        c.set((secs, text));
        Some(text)
    })?;
    Some((text, ms))
}

/// Month names as nginx writes them (`ngx_http_time`: English, three letters).
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn utc(t: SystemTime) -> OffsetDateTime {
    let nanos = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => i128::try_from(e.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `n` in decimal with at least `width` digits (zero-padded).
fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - width.min(digits.len()));
    out.extend_from_slice(&digits[start..]);
}

/// `t` as RFC 3339 in UTC with milliseconds (`YYYY-MM-DDTHH:MM:SS.mmmZ`, RFC 3339 §5.6).
pub(super) fn rfc3339_millis(out: &mut Vec<u8>, t: SystemTime) {
    match cached_second(&RFC3339_SECOND, t, rfc3339_second) {
        Some((second, ms)) => {
            out.extend_from_slice(&second);
            out.push(b'.');
            push_padded(out, ms, 3);
        }
        None => {
            rfc3339_second(out, t);
            out.push(b'.');
            push_padded(out, utc(t).millisecond().into(), 3);
        }
    }
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of `t`, in UTC.
fn rfc3339_second(out: &mut Vec<u8>, t: SystemTime) {
    let dt = utc(t);
    let (h, m, s) = dt.to_hms();
    push_year(out, dt.year());
    out.push(b'-');
    push_padded(out, u8::from(dt.month()).into(), 2);
    out.push(b'-');
    push_padded(out, dt.day().into(), 2);
    out.push(b'T');
    push_padded(out, h.into(), 2);
    out.push(b':');
    push_padded(out, m.into(), 2);
    out.push(b':');
    push_padded(out, s.into(), 2);
}

/// `t` as nginx's `$time_local` (`%02d/%s/%d:%02d:%02d:%02d +0000`), in UTC.
pub(super) fn nginx_local(out: &mut Vec<u8>, t: SystemTime) {
    match cached_second(&NGINX_SECOND, t, nginx_second) {
        Some((second, _)) => out.extend_from_slice(&second),
        None => nginx_second(out, t),
    }
}

fn nginx_second(out: &mut Vec<u8>, t: SystemTime) {
    let dt = utc(t);
    let (h, m, s) = dt.to_hms();
    push_padded(out, dt.day().into(), 2);
    out.push(b'/');
    out.extend_from_slice(MONTHS[usize::from(u8::from(dt.month())) - 1]);
    out.push(b'/');
    push_year(out, dt.year());
    out.push(b':');
    push_padded(out, h.into(), 2);
    out.push(b':');
    push_padded(out, m.into(), 2);
    out.push(b':');
    push_padded(out, s.into(), 2);
    out.extend_from_slice(b" +0000");
}

fn push_year(out: &mut Vec<u8>, year: i32) {
    if year < 0 {
        out.push(b'-');
    }
    push_padded(out, year.unsigned_abs(), 4);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn rfc(t: SystemTime) -> String {
        let mut v = Vec::new();
        rfc3339_millis(&mut v, t);
        String::from_utf8(v).unwrap()
    }

    fn local(t: SystemTime) -> String {
        let mut v = Vec::new();
        nginx_local(&mut v, t);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn known_instants_table() {
        let at = |secs: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms);
        // (instant, RFC 3339, $time_local, reason)
        let cases: &[(SystemTime, &str, &str, &str)] = &[
            (
                at(0, 0),
                "1970-01-01T00:00:00.000Z",
                "01/Jan/1970:00:00:00 +0000",
                "the epoch",
            ),
            (
                at(951_782_400, 7),
                "2000-02-29T00:00:00.007Z",
                "29/Feb/2000:00:00:00 +0000",
                "a leap day of a year divisible by 400",
            ),
            (
                at(1_798_761_599, 999),
                "2026-12-31T23:59:59.999Z",
                "31/Dec/2026:23:59:59 +0000",
                "the last millisecond of a year; milliseconds are truncated, not rounded",
            ),
            (
                UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_999_999),
                "2023-11-14T22:13:20.123Z",
                "14/Nov/2023:22:13:20 +0000",
                "sub-millisecond digits are cut",
            ),
            (
                UNIX_EPOCH - Duration::from_secs(1),
                "1969-12-31T23:59:59.000Z",
                "31/Dec/1969:23:59:59 +0000",
                "a clock before the epoch",
            ),
            (
                UNIX_EPOCH + Duration::from_secs(400_000_000_000),
                "1970-01-01T00:00:00.000Z",
                "01/Jan/1970:00:00:00 +0000",
                "beyond year 9999: the epoch, not a panic",
            ),
        ];
        for (t, want_rfc, want_local, why) in cases {
            assert_eq!(rfc(*t), *want_rfc, "{why}");
            assert_eq!(local(*t), *want_local, "{why}");
        }
    }

    /// Lines within one second come from the cache; the next second is computed again.
    #[test]
    fn the_cached_second_changes_with_the_second() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms);
        for (ms, want_rfc, want_local) in [
            (
                998,
                "2023-11-14T22:13:20.998Z",
                "14/Nov/2023:22:13:20 +0000",
            ),
            (
                999,
                "2023-11-14T22:13:20.999Z",
                "14/Nov/2023:22:13:20 +0000",
            ),
            (
                1000,
                "2023-11-14T22:13:21.000Z",
                "14/Nov/2023:22:13:21 +0000",
            ),
            (5, "2023-11-14T22:13:20.005Z", "14/Nov/2023:22:13:20 +0000"),
        ] {
            assert_eq!(rfc(at(ms)), want_rfc);
            assert_eq!(local(at(ms)), want_local);
        }
    }

    proptest! {
        /// Against two independent references: `httpdate` (IMF-fixdate, whole seconds, its own
        /// calendar code) for the date and time, and `time`'s own formatter for the
        /// milliseconds, over 1970 to 9999.
        #[test]
        fn matches_the_references(secs in 0u64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            let reference = OffsetDateTime::from(t)
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap();
            prop_assert_eq!(rfc(t), reference);
            // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
            let imf = httpdate::fmt_http_date(t);
            let p: Vec<&str> = imf.split([' ', ',']).filter(|s| !s.is_empty()).collect();
            let want = format!("{}/{}/{}:{} +0000", p[1], p[2], p[3], p[4]);
            prop_assert_eq!(local(t), want);
        }
    }
}
