//! Login timestamps in the three shapes gateways send: RFC 3339, the RBA data set's own
//! format, and epoch milliseconds.

use chrono::{DateTime, NaiveDateTime, Utc};

/// The RBA CSV format, e.g. `2020-02-03 12:43:30.772`; it carries no zone and is UTC.
const RBA_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// The same without the space, as some exporters write naive ISO 8601 (`2020-02-03T12:43:30`).
const NAIVE_ISO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// Parses a textual timestamp: RFC 3339 (any offset, converted to UTC), the RBA format
/// (UTC), a naive ISO 8601 date-time (UTC) or a string of digits holding epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Ok(parsed.with_timezone(&Utc));
    }
    for format in [RBA_FORMAT, NAIVE_ISO_FORMAT] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive.and_utc());
        }
    }
    let is_epoch = !text.is_empty()
        && text
            .strip_prefix('-')
            .unwrap_or(text)
            .bytes()
            .all(|b| b.is_ascii_digit());
    if is_epoch {
        let millis = text
            .parse::<i64>()
            .map_err(|_| format!("epoch milliseconds `{text}` out of range"))?;
        return from_epoch_millis(millis);
    }
    Err(format!(
        "`{text}` is not RFC 3339, the RBA format `2020-02-03 12:43:30.772` or epoch milliseconds"
    ))
}

/// Converts epoch milliseconds to a UTC date-time.
pub fn from_epoch_millis(millis: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| format!("epoch milliseconds {millis} out of range"))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Timelike};

    use super::*;

    #[test]
    fn rba_format_is_utc() {
        let t = parse_timestamp("2020-02-03 12:43:30.772").unwrap();
        assert_eq!((t.hour(), t.weekday().num_days_from_monday()), (12, 0));
        assert_eq!(t.timestamp_millis(), 1_580_733_810_772);
    }

    #[test]
    fn rba_format_without_fraction() {
        let t = parse_timestamp("2020-02-09 23:59:59").unwrap();
        assert_eq!((t.hour(), t.weekday().num_days_from_monday()), (23, 6));
    }

    #[test]
    fn rfc3339_offsets_convert_to_utc() {
        let t = parse_timestamp("2020-02-03T01:30:00+02:00").unwrap();
        assert_eq!((t.hour(), t.weekday().num_days_from_monday()), (23, 6));
    }

    #[test]
    fn epoch_millis_as_text() {
        let t = parse_timestamp("1580733810772").unwrap();
        assert_eq!(t, parse_timestamp("2020-02-03 12:43:30.772").unwrap());
    }

    #[test]
    fn garbage_is_rejected_with_the_value() {
        let err = parse_timestamp("yesterday").unwrap_err();
        assert!(err.contains("yesterday"), "{err}");
        assert!(parse_timestamp("99999999999999999999").is_err());
        assert!(from_epoch_millis(i64::MAX).is_err());
    }
}
