//! Backstage durations (`readDurationFromConfig` in `@backstage/config`): a `HumanDuration` map
//! (`{years, months, weeks, days, hours, minutes, seconds, milliseconds}`), an ISO-8601 string
//! (`PT1H`, `P2DT6H`) or a string in the style of the `ms` library (`30 minutes`, `1h`, `2 hours`).
//!
//! Everything is computed in milliseconds as `f64`, as Backstage does. A year counts 365 days and a
//! month 30 days (`durationToMilliseconds` in `@backstage/types`).

use super::value::ConfigValue;

const SECOND: f64 = 1000.0;
const MINUTE: f64 = 60.0 * SECOND;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;
const WEEK: f64 = 7.0 * DAY;
const MONTH: f64 = 30.0 * DAY;
const YEAR: f64 = 365.0 * DAY;
/// The year of the `ms` library, used only to split an `ms` string into `HumanDuration` units.
const MS_YEAR: f64 = 365.25 * DAY;

/// The keys of a `HumanDuration` map and what one unit of each is worth in milliseconds.
pub(crate) const HUMAN_DURATION_UNITS: &[(&str, f64)] = &[
    ("years", YEAR),
    ("months", MONTH),
    ("weeks", WEEK),
    ("days", DAY),
    ("hours", HOUR),
    ("minutes", MINUTE),
    ("seconds", SECOND),
    ("milliseconds", 1.0),
];

/// Reads a duration in milliseconds from a configuration value. The result may be negative (an
/// ISO string or a map can say so); callers decide what to do with that. On failure, the message
/// explains what is wrong (without file or key: the caller adds them).
pub(crate) fn duration_millis(value: &ConfigValue) -> Result<f64, String> {
    if let Some(text) = value.as_str() {
        return parse_duration_string(text);
    }
    let Some(map) = value.as_map() else {
        return Err(format!(
            "expected a duration (a string such as '1h' or 'PT1H', or a map such as {{hours: 1}}), got {}",
            value.type_name()
        ));
    };
    let expected = || {
        HUMAN_DURATION_UNITS
            .iter()
            .map(|(name, _)| format!("'{name}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut total = 0.0;
    for (key, item) in map.iter() {
        let Some((_, unit)) = HUMAN_DURATION_UNITS.iter().find(|(name, _)| *name == key) else {
            return Err(format!(
                "unknown property '{key}' in duration; expected one or more of {}",
                expected()
            ));
        };
        let amount = match (item.as_number(), item.as_str()) {
            (Some(n), _) => n,
            (None, Some(s)) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("duration property '{key}' must be a number, got '{s}'"))?,
            _ => {
                return Err(format!(
                    "duration property '{key}' must be a number, got {}",
                    item.type_name()
                ));
            }
        };
        total += amount * unit;
    }
    if map.is_empty() {
        return Err(format!("a duration needs one or more of {}", expected()));
    }
    Ok(total)
}

/// Parses the string forms: ISO-8601 when it starts with `P`, otherwise the `ms` style.
pub(crate) fn parse_duration_string(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let result = if text.starts_with('P') {
        parse_iso_duration(text)
    } else {
        parse_ms_duration(text)
    };
    result.map_err(|reason| format!("invalid duration '{text}': {reason}"))
}

/// The `ms` library's format: a number, optional spaces, an optional unit; case-insensitive.
/// A plain integer is refused (as in Backstage: say which unit you mean), as is a negative value.
fn parse_ms_duration(text: &str) -> Result<f64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "the value cannot be a plain number; try adding a unit like 'ms' or 'seconds'".into(),
        );
    }
    let invalid = || {
        "not a valid duration string, try a number followed by a unit such as '1d' or '2 seconds'"
            .to_owned()
    };
    if text.len() > 100 {
        return Err(invalid());
    }
    let number_len = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && c == '-')))
        .map_or(text.len(), |(i, _)| i);
    let (number, unit) = text.split_at(number_len);
    // The ms regex: -?(?:\d+)?\.?\d+ — digits, at most one dot, and a digit last.
    let digits = number.strip_prefix('-').unwrap_or(number);
    if digits.is_empty()
        || digits.matches('.').count() > 1
        || !digits.ends_with(|c: char| c.is_ascii_digit())
    {
        return Err(invalid());
    }
    let amount: f64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let factor = match unit.as_str() {
        "years" | "year" | "yrs" | "yr" | "y" => MS_YEAR,
        "weeks" | "week" | "w" => WEEK,
        "days" | "day" | "d" => DAY,
        "hours" | "hour" | "hrs" | "hr" | "h" => HOUR,
        "minutes" | "minute" | "mins" | "min" | "m" => MINUTE,
        "seconds" | "second" | "secs" | "sec" | "s" => SECOND,
        "milliseconds" | "millisecond" | "msecs" | "msec" | "ms" | "" => 1.0,
        _ => return Err(invalid()),
    };
    let millis = amount * factor;
    if millis < 0.0 {
        return Err("negative durations are not allowed".into());
    }
    // Backstage turns the `ms` result into a HumanDuration, whole years first (of 365.25 days),
    // and back into milliseconds with years of 365 days.
    let years = (millis / MS_YEAR).floor();
    Ok(years * YEAR + (millis - years * MS_YEAR))
}

/// ISO-8601 durations as luxon reads them: `[-]P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`, each
/// number possibly negative or (except seconds) fractional.
fn parse_iso_duration(text: &str) -> Result<f64, String> {
    let invalid = || {
        "invalid ISO format, expected a value similar to 'P2DT6H' (2 days 6 hours) or 'PT1M' (1 minute)"
            .to_owned()
    };
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let rest = rest.strip_prefix('P').ok_or_else(invalid)?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    let mut take =
        |part: &str, units: &[(char, f64)], seconds_allowed: bool| -> Result<(), String> {
            let mut remaining = part;
            let mut next_unit = 0;
            while !remaining.is_empty() {
                let end = remaining
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',' || c == '-'))
                    .ok_or_else(invalid)?;
                let (number, after) = remaining.split_at(end);
                let mut chars = after.chars();
                let designator = chars.next().ok_or_else(invalid)?;
                let position = units[next_unit..]
                    .iter()
                    .position(|(d, _)| *d == designator)
                    .ok_or_else(invalid)?;
                let (_, factor) = units[next_unit + position];
                next_unit += position + 1;
                let is_seconds = seconds_allowed && designator == 'S';
                let value = parse_iso_number(number, is_seconds).ok_or_else(invalid)?;
                total += value * factor;
                any = true;
                remaining = chars.as_str();
            }
            Ok(())
        };
    take(
        date,
        &[('Y', YEAR), ('M', MONTH), ('W', WEEK), ('D', DAY)],
        false,
    )?;
    if let Some(time) = time {
        take(time, &[('H', HOUR), ('M', MINUTE), ('S', SECOND)], true)?;
    }
    if !any {
        return Err("invalid ISO format, no values given".into());
    }
    Ok(if negative { -total } else { total })
}

/// One ISO number: `-?\d{1,20}(\.\d{1,20})?`, or for seconds `-?\d{1,20}([.,]\d{1,20})?` whose
/// fraction is truncated to whole milliseconds.
fn parse_iso_number(text: &str, seconds: bool) -> Option<f64> {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    let (whole, fraction) = match unsigned.split_once(|c| c == '.' || (seconds && c == ',')) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits_ok = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || !fraction.is_none_or(digits_ok) {
        return None;
    }
    let whole: f64 = whole.parse().ok()?;
    let fraction = match fraction {
        None => 0.0,
        Some(f) if seconds => (format!("0.{f}").parse::<f64>().ok()? * 1000.0).floor() / 1000.0,
        Some(f) => format!("0.{f}").parse::<f64>().ok()?,
    };
    Some(sign * (whole + fraction))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::value::{ConfigMap, ValueKind};

    fn secs(text: &str) -> f64 {
        parse_duration_string(text).unwrap() / 1000.0
    }

    #[test]
    fn ms_style_strings() {
        assert_eq!(secs("30 minutes"), 1800.0);
        assert_eq!(secs("1h"), 3600.0);
        assert_eq!(secs("2 hours"), 7200.0);
        assert_eq!(secs("2 Hours"), 7200.0);
        assert_eq!(secs(" 1.5h "), 5400.0);
        assert_eq!(secs("1d"), 86400.0);
        assert_eq!(secs("1 week"), 604_800.0);
        assert_eq!(secs("1500ms"), 1.5);
        assert_eq!(secs("1y"), 365.0 * 86400.0);
        assert_eq!(secs(".5m"), 30.0);
        for bad in [
            "3600",
            "1 fortnight",
            "",
            "h",
            "1..5h",
            "1.h",
            "-1h",
            "1 h s",
        ] {
            assert!(parse_duration_string(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration_string("3600")
                .unwrap_err()
                .contains("plain number")
        );
    }

    #[test]
    fn iso_strings() {
        assert_eq!(secs("PT1H"), 3600.0);
        assert_eq!(secs("PT1M"), 60.0);
        assert_eq!(secs("P2DT6H"), 2.0 * 86400.0 + 6.0 * 3600.0);
        assert_eq!(secs("P1W"), 604_800.0);
        assert_eq!(secs("P1M"), 30.0 * 86400.0);
        assert_eq!(secs("PT1.5H"), 5400.0);
        assert_eq!(secs("PT1.2345S"), 1.234);
        assert_eq!(secs("PT1,5S"), 1.5);
        // Like Backstage, only strings starting with `P` are read as ISO.
        assert!(parse_duration_string("-PT10M").is_err());
        assert_eq!(parse_iso_duration("-PT10M").unwrap(), -600_000.0);
        for bad in ["P", "PT", "PT1", "P1H", "PT1D", "PT1S1M", "PT1X"] {
            assert!(parse_duration_string(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_duration_maps() {
        let file: Arc<str> = Arc::from("<t>");
        let num = |n: f64| ConfigValue::new(ValueKind::Number(n), Arc::clone(&file));
        let map = |entries: Vec<(&str, ConfigValue)>| {
            let map: ConfigMap = entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            ConfigValue::new(ValueKind::Map(map), Arc::clone(&file))
        };
        let value = map(vec![("hours", num(1.0)), ("minutes", num(30.0))]);
        assert_eq!(duration_millis(&value).unwrap(), 5_400_000.0);
        let value = map(vec![("hour", num(1.0))]);
        assert!(
            duration_millis(&value)
                .unwrap_err()
                .contains("unknown property 'hour'")
        );
        assert!(duration_millis(&map(vec![])).is_err());
        let value = ConfigValue::new(ValueKind::Bool(true), Arc::clone(&file));
        assert!(
            duration_millis(&value)
                .unwrap_err()
                .contains("got a boolean")
        );
    }
}
