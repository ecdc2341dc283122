//! Reading the report that `wrk --latency` prints.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// What one `wrk --latency` run measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WrkReport {
    /// `Requests/sec:`.
    pub(crate) requests_per_sec: f64,
    /// The request count of `N requests in 10.00s, ...`.
    pub(crate) requests: u64,
    /// The run time of that line.
    pub(crate) elapsed: Duration,
    /// The 50% line of the latency distribution.
    pub(crate) p50: Duration,
    /// The 90% line of the latency distribution.
    pub(crate) p90: Duration,
    /// The 99% line of the latency distribution.
    pub(crate) p99: Duration,
    /// `Non-2xx or 3xx responses:`, zero when wrk printed no such line.
    pub(crate) non_success: u64,
    /// The sum of `Socket errors: connect N, read N, write N, timeout N`, zero when absent.
    pub(crate) socket_errors: u64,
}

/// The reports of wrk runs made at the same time against different servers, as one: counts and
/// rates added up, the longest run time, and each latency percentile the worse of the runs.
pub(crate) fn combine(reports: &[WrkReport]) -> Option<WrkReport> {
    let mut combined = reports.first()?.clone();
    for report in &reports[1..] {
        combined.requests_per_sec += report.requests_per_sec;
        combined.requests += report.requests;
        combined.elapsed = combined.elapsed.max(report.elapsed);
        combined.p50 = combined.p50.max(report.p50);
        combined.p90 = combined.p90.max(report.p90);
        combined.p99 = combined.p99.max(report.p99);
        combined.non_success += report.non_success;
        combined.socket_errors += report.socket_errors;
    }
    Some(combined)
}

/// Parses the standard output of `wrk --latency`.
pub(crate) fn parse(output: &str) -> Result<WrkReport> {
    let mut requests_per_sec = None;
    let mut totals = None;
    let mut percentiles = [None; 3];
    let mut non_success = 0;
    let mut socket_errors = 0;
    for line in output.lines() {
        let line = line.trim();
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            let rate = rate.trim();
            requests_per_sec = Some(
                rate.parse::<f64>()
                    .with_context(|| format!("bad Requests/sec `{rate}`"))?,
            );
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            let count = count.trim();
            non_success = count
                .parse()
                .with_context(|| format!("bad non-2xx count `{count}`"))?;
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 12, write 0, timeout 3`
            for part in errors.split(',') {
                let number = part.split_whitespace().nth(1).unwrap_or_default();
                socket_errors += number
                    .parse::<u64>()
                    .with_context(|| format!("bad socket error count in `{line}`"))?;
            }
        } else if let Some((count, rest)) = line.split_once(" requests in ") {
            let count = count.trim();
            let requests = count
                .parse::<u64>()
                .with_context(|| format!("bad request count `{count}`"))?;
            let elapsed = rest.split(',').next().unwrap_or_default().trim();
            totals = Some((requests, parse_duration(elapsed)?));
        } else if let Some((label, value)) = line.split_once('%') {
            let slot = match label.trim() {
                "50" => 0,
                "90" => 1,
                "99" => 2,
                _ => continue,
            };
            percentiles[slot] = Some(parse_duration(value.trim())?);
        }
    }
    let requests_per_sec = requests_per_sec.context("no `Requests/sec:` line in wrk's output")?;
    let (requests, elapsed) = totals.context("no `N requests in T` line in wrk's output")?;
    let [Some(p50), Some(p90), Some(p99)] = percentiles else {
        bail!("no latency distribution in wrk's output (was it run with --latency?)");
    };
    Ok(WrkReport {
        requests_per_sec,
        requests,
        elapsed,
        p50,
        p90,
        p99,
        non_success,
        socket_errors,
    })
}

/// Parses wrk's durations: `738.78us`, `3.02ms`, `1.20s`, `2.00m`, `1.00h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("duration `{text}` has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("bad duration `{text}`"))?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => bail!("unknown unit in duration `{text}`"),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        bail!("bad duration `{text}`");
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::Result;

    use super::{combine, parse, parse_duration};

    /// Captured from `wrk -t2 -c8 -d2s --latency` against `python3 -m http.server` on loopback.
    const SAMPLE: &str = "\
Running 2s test @ http://127.0.0.1:18765/index.html
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.02ms  738.78us  11.68ms   80.70%
    Req/Sec     0.99k    29.61     1.04k    62.50%
  Latency Distribution
     50%    2.92ms
     75%    3.33ms
     90%    3.79ms
     99%    5.27ms
  3936 requests in 2.00s, 719.32KB read
Requests/sec:   1964.93
Transfer/sec:    359.10KB
";

    /// Captured from `wrk -t2 -c32 -d2s --latency` against a missing page of the same server,
    /// with a `Socket errors` line added in wrk's format.
    const SAMPLE_WITH_ERRORS: &str = "\
Running 2s test @ http://127.0.0.1:18765/missing
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    16.60ms   80.80ms 834.70ms   96.44%
    Req/Sec     1.08k   348.63     1.55k    40.00%
  Latency Distribution
     50%    2.69ms
     75%    3.06ms
     90%    3.67ms
     99%  505.80ms
  4302 requests in 2.00s, 2.13MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4302
Requests/sec:   2147.36
Transfer/sec:      1.06MB
";

    #[test]
    fn reads_a_wrk_latency_report() -> Result<()> {
        let report = parse(SAMPLE)?;
        assert!((report.requests_per_sec - 1964.93).abs() < 1e-9);
        assert_eq!(report.requests, 3936);
        assert_eq!(report.elapsed, Duration::from_secs(2));
        assert_eq!(report.p50, Duration::from_micros(2920));
        assert_eq!(report.p90, Duration::from_micros(3790));
        assert_eq!(report.p99, Duration::from_micros(5270));
        assert_eq!((report.non_success, report.socket_errors), (0, 0));
        Ok(())
    }

    #[test]
    fn reads_errors_and_non_success_responses() -> Result<()> {
        let report = parse(SAMPLE_WITH_ERRORS)?;
        assert_eq!(report.requests, 4302);
        assert_eq!(report.non_success, 4302);
        assert_eq!(report.socket_errors, 5);
        assert_eq!(report.p99, Duration::from_micros(505_800));
        Ok(())
    }

    #[test]
    fn rejects_a_report_without_latency_distribution() {
        let without: String = SAMPLE
            .lines()
            .filter(|line| {
                !line.trim_start().starts_with(char::is_numeric) || line.contains("requests in")
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(parse(&without).is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn reads_every_unit() -> Result<()> {
        assert_eq!(parse_duration("738.78us")?, Duration::from_nanos(738_780));
        assert_eq!(parse_duration("1.50s")?, Duration::from_millis(1500));
        assert_eq!(parse_duration("2.00m")?, Duration::from_secs(120));
        assert!(parse_duration("3.0parsecs").is_err());
        Ok(())
    }

    #[test]
    fn combines_simultaneous_runs() -> Result<()> {
        let one = parse(SAMPLE)?;
        let mut two = one.clone();
        two.p99 = Duration::from_millis(9);
        two.non_success = 3;
        let both = combine(&[one.clone(), two]).expect("two reports");
        assert_eq!(both.requests, one.requests * 2);
        assert!((both.requests_per_sec - one.requests_per_sec * 2.0).abs() < 1e-6);
        assert_eq!(both.p99, Duration::from_millis(9));
        assert_eq!(both.p50, one.p50);
        assert_eq!(both.non_success, 3);
        assert!(combine(&[]).is_none());
        Ok(())
    }
}
