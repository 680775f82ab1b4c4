//! Durations in Go's `time.Duration` notation (`10s`, `1m30s`, `1.5s`, `250ms`), the one
//! notation the API server (`?timeout=10s`), the chart's values and every duration flag use,
//! read the same way everywhere.

use std::time::Duration;

/// Parses a duration; negative or overflowing ones are refused.
pub(crate) fn parse(text: &str) -> Option<Duration> {
    let nanos = go_parse_duration::parse_duration(text).ok()?;
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// A duration flag (clap's `value_parser`): zero allowed (`--shutdown-delay 0s`).
pub(crate) fn flag(text: &str) -> Result<Duration, String> {
    parse(text).ok_or_else(|| format!("{text:?} is not a duration like 5s, 250ms or 10m"))
}

/// A duration flag that must be above zero (an interval).
pub(crate) fn positive_flag(text: &str) -> Result<Duration, String> {
    parse(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive duration like 10m or 30s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_notation_table() {
        let ms = |n| Some(Duration::from_millis(n));
        for (text, want) in [
            ("10s", ms(10_000)),
            ("1m30s", ms(90_000)),
            ("1.5s", ms(1_500)),
            ("250ms", ms(250)),
            ("0s", ms(0)),
            ("0", ms(0)),
            ("1h", ms(3_600_000)),
            ("-1s", None),
            ("9999999999999999999s", None),
            ("10", None),
            ("s", None),
            ("10x", None),
            ("ten seconds", None),
            ("", None),
        ] {
            assert_eq!(parse(text), want, "{text:?}");
        }
        assert!(flag("0s").is_ok());
        assert!(positive_flag("0s").is_err());
        assert_eq!(positive_flag("10m"), Ok(Duration::from_secs(600)));
        assert!(flag("x").unwrap_err().contains("\"x\""));
    }
}
