//! Tests of the duration parser and of the ranges every duration key is checked against.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::value::{ConfigMap, ValueKind};

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

// ---- Bounds: every duration key has a range, checked when the configuration is read ----

#[test]
fn bounds_refuse_values_outside_them_and_non_finite_ones() {
    let hour = 3_600_000.0;
    assert_eq!(
        DurationBounds::TIMEOUT.check_millis(hour).unwrap(),
        Duration::from_secs(3600)
    );
    assert_eq!(
        DurationBounds::TIMEOUT.check_millis(1500.0).unwrap(),
        Duration::from_millis(1500)
    );
    let err = DurationBounds::TIMEOUT
        .check_millis(hour + 1.0)
        .unwrap_err();
    assert_eq!(
        err,
        "expected a duration from 1 millisecond to 1 hour, got 3600001 milliseconds"
    );
    assert!(DurationBounds::TIMEOUT.check_millis(0.0).is_err());
    assert!(DurationBounds::CLOCK_SKEW.check_millis(0.0).is_ok());
    assert!(DurationBounds::CLOCK_SKEW.check_millis(-1.0).is_err());
    let err = DurationBounds::SESSION
        .check_millis(20_000.0 * YEAR)
        .unwrap_err();
    assert_eq!(
        err,
        "expected a duration from 1 second to 3650 days, got 7300000 days"
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, -0.5] {
        for bounds in [
            DurationBounds::TIMEOUT,
            DurationBounds::CLOCK_SKEW,
            DurationBounds::SESSION,
            DurationBounds::INTERVAL,
            DurationBounds::ANY,
        ] {
            assert!(bounds.check_millis(bad).is_err(), "{bad} in {bounds:?}");
            assert!(
                bounds.check_whole_millis(bad).is_err(),
                "{bad} in {bounds:?}"
            );
        }
    }
    assert_eq!(
        DurationBounds::CLOCK_SKEW
            .check_whole_millis(30_000.0)
            .unwrap(),
        Duration::from_secs(30)
    );
    assert_eq!(
        DurationBounds::CLOCK_SKEW
            .check_whole_millis(0.5)
            .unwrap_err(),
        "expected a whole number of milliseconds from 0 to 3600000, got 0.5"
    );
}

#[test]
fn overflowing_and_non_finite_durations_are_refused_without_panicking() {
    let file: Arc<str> = Arc::from("<t>");
    let map = |key: &str, kind: ValueKind| {
        let map: ConfigMap = [(key.to_owned(), ConfigValue::new(kind, Arc::clone(&file)))]
            .into_iter()
            .collect();
        ConfigValue::new(ValueKind::Map(map), Arc::clone(&file))
    };
    for value in [
        map("years", ValueKind::Number(f64::INFINITY)),
        map("years", ValueKind::Number(f64::NAN)),
        map("years", ValueKind::Number(1e308)),
        map("hours", ValueKind::String("NaN".into())),
        map("hours", ValueKind::String("inf".into())),
        map("hours", ValueKind::String("-infinity".into())),
    ] {
        assert!(duration_millis(&value).is_err(), "{value:?}");
    }
    // Finite but far too long: parsed, then refused by every range.
    for text in [
        "99999999999999999999 days",
        "99999999999999999999999999999999999999999999999999y",
        "P99999999999999999999Y",
        "PT99999999999999999999.99999999999999999999S",
    ] {
        let millis = parse_duration_string(text).unwrap();
        assert!(millis.is_finite(), "{text}");
        assert!(DurationBounds::ANY.check_millis(millis).is_err(), "{text}");
    }
}

// ---- Properties: no input panics, and whatever is accepted is within its range ----

const ALL_BOUNDS: [DurationBounds; 5] = [
    DurationBounds::TIMEOUT,
    DurationBounds::CLOCK_SKEW,
    DurationBounds::SESSION,
    DurationBounds::INTERVAL,
    DurationBounds::ANY,
];

fn assert_within(bounds: DurationBounds, millis: f64) -> Result<(), TestCaseError> {
    if let Ok(duration) = bounds.check_millis(millis) {
        prop_assert!(
            duration >= bounds.min && duration <= bounds.max,
            "{millis} {bounds:?}"
        );
    }
    if let Ok(duration) = bounds.check_whole_millis(millis) {
        prop_assert!(
            duration >= bounds.min && duration <= bounds.max,
            "{millis} {bounds:?}"
        );
        prop_assert_eq!(duration.as_millis() as f64, millis);
    }
    Ok(())
}

fn any_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::ANY,
        -1e12..1e12f64,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::MAX),
        Just(0.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_string_parses_or_fails_without_panicking(text in "\\PC{0,40}") {
        if let Ok(millis) = parse_duration_string(&text) {
            prop_assert!(millis.is_finite(), "{text}");
            for bounds in ALL_BOUNDS {
                assert_within(bounds, millis)?;
            }
        }
    }

    #[test]
    fn ms_style_strings_are_finite_and_bounded(
        text in "-?[0-9]{0,30}(\\.[0-9]{0,30})? ?(years|y|weeks|w|days|d|hours|h|minutes|m|seconds|s|ms|msecs|x)?"
    ) {
        if let Ok(millis) = parse_duration_string(&text) {
            prop_assert!(millis.is_finite() && millis >= 0.0, "{text} {millis}");
            for bounds in ALL_BOUNDS {
                assert_within(bounds, millis)?;
            }
        }
    }

    #[test]
    fn iso_strings_are_finite_and_bounded(
        text in "-?P([0-9.,-]{0,24}[YMWD]){0,4}(T([0-9.,-]{0,24}[HMS]){0,3})?"
    ) {
        let _ = parse_duration_string(&text);
        if let Ok(millis) = parse_iso_duration(&text) {
            prop_assert!(millis.is_finite(), "{text}");
            for bounds in ALL_BOUNDS {
                assert_within(bounds, millis)?;
            }
        }
    }

    #[test]
    fn human_duration_maps_are_finite_and_bounded(
        entries in proptest::collection::vec(
            (
                prop_oneof![
                    proptest::sample::select(HUMAN_DURATION_UNITS.iter().map(|(n, _)| *n).collect::<Vec<_>>())
                        .prop_map(str::to_owned),
                    "[a-z]{1,8}",
                ],
                prop_oneof![
                    any_number().prop_map(ValueKind::Number),
                    "\\PC{0,12}".prop_map(ValueKind::String),
                    any::<bool>().prop_map(ValueKind::Bool),
                ],
            ),
            0..6,
        )
    ) {
        let file: Arc<str> = Arc::from("<p>");
        let map: ConfigMap = entries
            .into_iter()
            .map(|(k, kind)| (k, ConfigValue::new(kind, Arc::clone(&file))))
            .collect();
        let value = ConfigValue::new(ValueKind::Map(map), file);
        if let Ok(millis) = duration_millis(&value) {
            prop_assert!(millis.is_finite());
            for bounds in ALL_BOUNDS {
                assert_within(bounds, millis)?;
            }
        }
    }

    #[test]
    fn any_number_is_checked_without_panicking(millis in any_number()) {
        for bounds in ALL_BOUNDS {
            assert_within(bounds, millis)?;
        }
    }
}
