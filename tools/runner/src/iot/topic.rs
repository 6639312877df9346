//! MQTT topic filters as IoT Core matches them: `+` one level, `#` every level below
//! (only last), and no wildcard first level matching a `$` topic.

/// Checks a filter's syntax: `#` only as the last level, wildcards only as whole levels.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("topic filter is empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "{filter:?}: '#' must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("{filter:?}: '+' must be a whole level"));
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The `n`th level of `topic`, counting from 1 (IoT SQL's `topic(n)`).
pub fn level(topic: &str, n: usize) -> Option<&str> {
    n.checked_sub(1).and_then(|i| topic.split('/').nth(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_matches_one_level_and_hash_the_rest() {
        assert!(matches("fleet/+/telemetry", "fleet/car-1/telemetry"));
        assert!(!matches("fleet/+/telemetry", "fleet/car-1/x/telemetry"));
        assert!(!matches("fleet/+/telemetry", "fleet/car-1/telemetry/more"));
        assert!(matches("fleet/#", "fleet/car-1/telemetry"));
        assert!(
            matches("fleet/#", "fleet"),
            "# also matches the parent level"
        );
        assert!(matches("#", "fleet/car-1"));
        assert!(matches("fleet/car-1/telemetry", "fleet/car-1/telemetry"));
        assert!(!matches("fleet/car-1/telemetry", "fleet/car-2/telemetry"));
        assert!(matches("fleet/+", "fleet/"), "an empty level is a level");
    }

    #[test]
    fn wildcards_first_never_match_dollar_topics() {
        assert!(!matches("#", "$aws/events/presence/connected/c1"));
        assert!(!matches(
            "+/events/presence/connected/c1",
            "$aws/events/presence/connected/c1"
        ));
        assert!(matches(
            "$aws/events/presence/+/+",
            "$aws/events/presence/connected/c1"
        ));
        assert!(!matches(
            "$aws/events/presence/+/+",
            "$aws/events/presence/connected/c1/x"
        ));
    }

    #[test]
    fn filters_are_checked() {
        assert!(check_filter("fleet/+/telemetry").is_ok());
        assert!(check_filter("fleet/#").is_ok());
        assert!(check_filter("fleet/#/x").is_err());
        assert!(check_filter("fleet/a+").is_err());
        assert!(check_filter("fleet/a#").is_err());
        assert!(check_filter("").is_err());
    }

    #[test]
    fn levels_count_from_one() {
        assert_eq!(level("fleet/car-1/telemetry", 2), Some("car-1"));
        assert_eq!(level("fleet/car-1/telemetry", 4), None);
        assert_eq!(level("fleet/car-1/telemetry", 0), None);
    }
}
