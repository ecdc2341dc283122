//! Backstage durations (`readDurationFromConfig` in `@backstage/config`): a `HumanDuration` map
//! (`{years, months, weeks, days, hours, minutes, seconds, milliseconds}`), an ISO-8601 string
//! (`PT1H`, `P2DT6H`) or a string in the style of the `ms` library (`30 minutes`, `1h`, `2 hours`).
//!
//! Everything is computed in milliseconds as `f64`, as Backstage does. A year counts 365 days and a
//! month 30 days (`durationToMilliseconds` in `@backstage/types`).
//!
//! Unlike Backstage, every duration key has a range ([`DurationBounds`]) that is checked when the
//! configuration is read, so that no configured value can overflow a time computation later
//! (`now + sessionDuration` on every callback, an interval timer, a cache expiry).

use std::time::Duration;

use crate::value::ConfigValue;

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

/// The longest duration any key accepts: ten years. Browsers keep a cookie for at most 400 days
/// (RFC 6265bis §5.5), but Backstage's own default session lifetime is 1000 days, so
/// configurations copied from it must still start.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 24 * 3600);

/// The range of values one duration key accepts, checked when the configuration is read. Every
/// duration the server reads goes through one of these: a value outside is refused with an
/// error naming the key, never clamped in silence and never left to overflow later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationBounds {
    min: Duration,
    max: Duration,
}

impl DurationBounds {
    /// Timeouts of requests the server makes or waits it tolerates: more than zero, at most one
    /// hour.
    pub const TIMEOUT: Self = Self::new(Duration::from_millis(1), Duration::from_secs(3600));
    /// Accepted clock skews between this server and an identity provider: zero to one hour.
    pub const CLOCK_SKEW: Self = Self::new(Duration::ZERO, Duration::from_secs(3600));
    /// Session lifetimes (`sessionDuration`): one second to ten years (the default is
    /// Backstage's 1000 days; browsers keep cookies for at most 400).
    pub const SESSION: Self = Self::new(Duration::from_secs(1), MAX_DURATION);
    /// Reload intervals and cache lifetimes, where zero turns the reloading or caching off:
    /// zero to one day.
    pub const INTERVAL: Self = Self::new(Duration::ZERO, Duration::from_secs(24 * 3600));
    /// The widest range, for a key without a range of its own: zero to ten years.
    pub const ANY: Self = Self::new(Duration::ZERO, MAX_DURATION);

    /// The range from `min` to `max`, both included.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    /// Checks a duration in milliseconds (as [`duration_millis`] returns it) against the range.
    /// The message says what the range is (without file or key: the caller adds them).
    pub fn check_millis(self, millis: f64) -> Result<Duration, String> {
        let out_of_range = || {
            format!(
                "expected a duration from {} to {}, got {}",
                describe_millis(self.min.as_secs_f64() * 1000.0),
                describe_millis(self.max.as_secs_f64() * 1000.0),
                describe_millis(millis)
            )
        };
        // Comparing in f64 first keeps NaN, infinities and huge values out of the conversion.
        if !millis.is_finite()
            || millis < self.min.as_secs_f64() * 1000.0
            || millis > self.max.as_secs_f64() * 1000.0
        {
            return Err(out_of_range());
        }
        // Whole milliseconds exactly, the fraction to the nearest nanosecond. `millis` is finite,
        // not negative and at most `max` here, so neither cast wraps (and `as` saturates).
        let whole = Duration::from_millis(millis.trunc() as u64);
        let nanos = Duration::from_nanos((millis.fract() * 1e6).round() as u64);
        whole.checked_add(nanos).ok_or_else(out_of_range)
    }

    /// Checks a whole number of milliseconds (a `…Ms` key, or a number where milliseconds are
    /// meant) against the range.
    pub fn check_whole_millis(self, millis: f64) -> Result<Duration, String> {
        // `fract` of NaN or an infinity is NaN, so those are not whole either.
        match self.check_millis(millis) {
            Ok(duration) if millis.fract() == 0.0 => Ok(duration),
            _ => Err(format!(
                "expected a whole number of milliseconds from {} to {}, got {millis}",
                self.min.as_millis(),
                self.max.as_millis()
            )),
        }
    }
}

/// A duration in milliseconds in words for messages: `1 hour`, `400 days`, `1500 milliseconds`.
fn describe_millis(millis: f64) -> String {
    if !millis.is_finite() {
        return format!("{millis}");
    }
    let units = [
        (DAY, "day"),
        (HOUR, "hour"),
        (MINUTE, "minute"),
        (SECOND, "second"),
    ];
    let (amount, unit) = units
        .iter()
        .find(|(size, _)| millis != 0.0 && (millis / size).fract() == 0.0)
        .map_or((millis, "millisecond"), |&(size, unit)| {
            (millis / size, unit)
        });
    let plural = if amount == 1.0 { "" } else { "s" };
    format!("{amount} {unit}{plural}")
}

/// Reads a duration in milliseconds from a configuration value. The result is finite but may be
/// negative (an ISO string or a map can say so) or huge; callers check it against their
/// [`DurationBounds`]. On failure, the message explains what is wrong (without file or key: the
/// caller adds them).
pub fn duration_millis(value: &ConfigValue) -> Result<f64, String> {
    let millis = if let Some(text) = value.as_str() {
        parse_duration_string(text)?
    } else {
        duration_map_millis(value)?
    };
    if !millis.is_finite() {
        return Err("the duration is too long".into());
    }
    Ok(millis)
}

/// A `HumanDuration` map in milliseconds.
fn duration_map_millis(value: &ConfigValue) -> Result<f64, String> {
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
        // `parse` accepts `NaN` and `inf`, and YAML has `.nan` and `.inf`: none is a number of
        // units.
        if !amount.is_finite() {
            return Err(format!(
                "duration property '{key}' must be a finite number, got {amount}"
            ));
        }
        total += amount * unit;
    }
    if map.is_empty() {
        return Err(format!("a duration needs one or more of {}", expected()));
    }
    Ok(total)
}

/// Parses the string forms: ISO-8601 when it starts with `P`, otherwise the `ms` style.
pub fn parse_duration_string(text: &str) -> Result<f64, String> {
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
mod tests;
