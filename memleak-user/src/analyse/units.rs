//! Human units: parsing durations and sizes (config file, CLI flags) and
//! formatting them for people (reports, "why" sentences).

/// The longest duration any flag or config key takes. Longer values are
/// typos or hostile input, and would overflow clocks later
/// (`Instant + Duration` panics).
pub const MAX_DURATION_S: f64 = 3650.0 * 86_400.0;

/// Parses a duration in seconds, at most [`MAX_DURATION_S`]: the one
/// duration parser of every flag and config key. A plain number is seconds;
/// suffixes `ms`, `s`, `m`/`min`, `h`, `d` are accepted (`"30s"`, `"1.5h"`,
/// `"500ms"`), and so are humantime's forms (`"1h 30m"`, `"2days"`).
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let v = parse_unbounded(text).or_else(|e| {
        humantime::parse_duration(text.trim())
            .map(|d| d.as_secs_f64())
            .map_err(|_| e)
    })?;
    check_duration(v).map_err(|why| format!("`{text}`: {why}"))
}

/// A duration in seconds within `0..=`[`MAX_DURATION_S`].
pub fn check_duration(seconds: f64) -> Result<f64, String> {
    if !(0.0..=MAX_DURATION_S).contains(&seconds) {
        return Err(format!(
            "a duration must be at most {} days (10 years) and not negative",
            MAX_DURATION_S / 86_400.0
        ));
    }
    Ok(seconds)
}

fn parse_unbounded(text: &str) -> Result<f64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(s.len());
    // "1e3s" is fine, but make sure a unit that starts with 'e' is not eaten.
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 30, 30s, 5m, 1h, 500ms)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hours" | "hour" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        other => {
            return Err(format!(
                "`{text}`: unknown duration unit `{other}` (use ms, s, m, h or d)"
            ))
        }
    };
    let v = value * scale;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "`{text}`: a duration must be a finite, non-negative number"
        ));
    }
    Ok(v)
}

/// Parses a size in bytes: a plain number is bytes; `K/KiB`, `M/MiB`,
/// `G/GiB` are powers of 1024, `KB/MB/GB` powers of 1000.
pub fn parse_bytes(text: &str) -> Result<f64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (examples: 1048576, 1MiB, 512KiB, 2GB)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "`{text}`: unknown size unit `{other}` (use KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    let v = value * scale;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "`{text}`: a size must be a finite, non-negative number"
        ));
    }
    Ok(v)
}

/// `1.5 MiB`, `312 B`, `-2.0 GiB` (binary units).
pub fn fmt_bytes(bytes: f64) -> String {
    if !bytes.is_finite() {
        return "n/a".into();
    }
    let sign = if bytes < 0.0 { "-" } else { "" };
    let mut v = bytes.abs();
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{sign}{v:.0} B")
    } else {
        format!("{sign}{v:.1} {}", UNITS[i])
    }
}

/// `1.5 MiB/s`.
pub fn fmt_rate(bytes_per_s: f64) -> String {
    format!("{}/s", fmt_bytes(bytes_per_s))
}

/// `45 s`, `12 min`, `3.2 h`, `4.0 d`; `0 s` for non-positive values.
pub fn fmt_duration(seconds: f64) -> String {
    if seconds.is_nan() {
        return "n/a".into();
    }
    if seconds == f64::INFINITY {
        return "never".into();
    }
    let s = seconds.max(0.0);
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 2.0 * 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 2.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), 30.0);
        assert_eq!(parse_duration("30s").unwrap(), 30.0);
        assert_eq!(parse_duration("1.5h").unwrap(), 5400.0);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert_eq!(parse_duration("2m").unwrap(), 120.0);
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("1h 30m").unwrap(), 5400.0);
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION_S);
        let e = parse_duration("18446744073709551615s").unwrap_err();
        assert!(e.contains("at most 3650 days"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1MiB").unwrap(), 1048576.0);
        assert_eq!(parse_bytes("4096").unwrap(), 4096.0);
        assert_eq!(parse_bytes("2 GB").unwrap(), 2e9);
        assert_eq!(parse_bytes("512k").unwrap(), 524288.0);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1 furlong").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_bytes(512.0), "512 B");
        assert_eq!(fmt_bytes(1536.0), "1.5 KiB");
        assert_eq!(fmt_bytes(-1048576.0), "-1.0 MiB");
        assert_eq!(fmt_bytes(f64::NAN), "n/a");
        assert_eq!(fmt_bytes(u64::MAX as f64), "16.0 EiB");
        assert_eq!(fmt_duration(45.0), "45 s");
        assert_eq!(fmt_duration(600.0), "10 min");
        assert_eq!(fmt_duration(f64::INFINITY), "never");
        assert_eq!(fmt_rate(2048.0), "2.0 KiB/s");
    }
}
