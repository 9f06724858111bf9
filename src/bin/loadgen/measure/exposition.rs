//! Reading one metric family out of a Prometheus text exposition (what
//! `GET /metrics` answers), for the counters loadgen compares before and
//! after a run.

/// The sum of every sample of `family` (each label set counted once):
/// `Ok(None)` when the exposition has none, `Err` when a sample's value
/// does not parse.
pub(crate) fn family_sum(exposition: &str, family: &str) -> Result<Option<f64>, String> {
    let mut sum = None;
    for line in exposition.lines() {
        let line = line.trim_start();
        // `# HELP`, `# TYPE` and comments.
        if line.starts_with('#') {
            continue;
        }
        // Not a longer name that starts the same (`…_total_created`).
        let Some(rest) = line
            .strip_prefix(family)
            .filter(|rest| rest.is_empty() || rest.starts_with(['{', ' ', '\t']))
        else {
            continue;
        };
        let after_labels = skip_labels(rest).ok_or_else(|| format!("unclosed labels: {line}"))?;
        // The value, then perhaps a timestamp.
        let value = after_labels
            .split_whitespace()
            .next()
            .and_then(|value| value.parse::<f64>().ok())
            .ok_or_else(|| format!("no value in: {line}"))?;
        sum = Some(sum.unwrap_or(0.0) + value);
    }
    Ok(sum)
}

/// What follows a sample's `{…}` (or the whole rest when it has none):
/// label values are quoted and may hold `}` and escaped quotes.
fn skip_labels(rest: &str) -> Option<&str> {
    let Some(labels) = rest.strip_prefix('{') else {
        return Some(rest);
    };
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return labels.get(i + 1..),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "flash_jobs_relayed_total";

    #[test]
    fn a_plain_sample_is_its_value() {
        let text = "# HELP flash_jobs_relayed_total Queued jobs relayed.\n\
                    # TYPE flash_jobs_relayed_total counter\n\
                    flash_jobs_relayed_total 3\n\
                    flash_jobs_relayed_total_created 1700000000\n\
                    flash_sweeps_published_total 9\n";
        assert_eq!(family_sum(text, FAMILY), Ok(Some(3.0)));
    }

    #[test]
    fn labelled_samples_are_summed() {
        let text = "flash_jobs_relayed_total{kind=\"hold\"} 3\n\
                    flash_jobs_relayed_total{kind=\"a } \\\" b\",x=\"y\"} 4 1700000000000\n\
                    \n\
                    flash_jobs_relayed_total{kind=\"order\"} 2.5e1\n";
        assert_eq!(family_sum(text, FAMILY), Ok(Some(32.0)));
    }

    #[test]
    fn an_absent_family_is_none_and_a_broken_sample_an_error() {
        assert_eq!(family_sum("flash_other_total 1\n", FAMILY), Ok(None));
        assert_eq!(family_sum("", FAMILY), Ok(None));
        assert!(family_sum("flash_jobs_relayed_total many\n", FAMILY).is_err());
        assert!(family_sum("flash_jobs_relayed_total{kind=\"x} 1\n", FAMILY).is_err());
        assert!(family_sum("flash_jobs_relayed_total\n", FAMILY).is_err());
    }
}
