//! Default names of recording files: `memleak-YYYYMMDD-HHMMSS.memleak`, the
//! UTC start time, so names sort by time and need no timezone database.

/// The file name of a recording started at `unix` seconds.
pub fn file_name(unix: u64) -> String {
    let (d, s) = (unix / 86_400, unix % 86_400);
    let (y, m, day) = civil_from_days(d as i64);
    format!(
        "memleak-{y:04}{m:02}{day:02}-{:02}{:02}{:02}.memleak",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_names() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
        assert_eq!(file_name(86_400 + 3661), "memleak-19700102-010101.memleak");
    }
}
