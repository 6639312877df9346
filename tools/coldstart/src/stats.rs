//! Medians and percentiles of measured samples.

use std::time::Duration;

/// The `p`-th percentile (0 to 100) by the nearest-rank method: the smallest sample with
/// at least `p`% of the samples at or below it. `None` for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median: the mean of the two middle samples when their number is even.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    middle(samples, |a, b| (a + b) / 2)
}

/// The median of whole numbers (kibibytes), rounded down when their number is even.
pub fn median_u64(samples: &[u64]) -> Option<u64> {
    middle(samples, |a, b| a.midpoint(b))
}

fn middle<T: Ord + Copy>(samples: &[T], mean: impl Fn(T, T) -> T) -> Option<T> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(mean(sorted[n / 2 - 1], sorted[n / 2])),
    }
}

/// Milliseconds with microsecond precision, for reports.
pub fn ms(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples = ms_list(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&samples, 100.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(percentile(&samples, 0.0), Some(Duration::from_millis(1)));
        let few = ms_list(&[30, 10, 20]);
        assert_eq!(percentile(&few, 99.0), Some(Duration::from_millis(30)));
        assert_eq!(percentile(&few, 50.0), Some(Duration::from_millis(20)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&ms_list(&[5, 1, 3])), Some(Duration::from_millis(3)));
        assert_eq!(
            median(&ms_list(&[4, 1, 3, 2])),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(median(&[]), None);
        assert_eq!(median_u64(&[7, 1, 4]), Some(4));
        assert_eq!(median_u64(&[1, 2]), Some(1));
        assert_eq!(median_u64(&[]), None);
    }

    #[test]
    fn milliseconds_keep_microseconds() {
        assert_eq!(ms(Duration::from_micros(14_250)), 14.25);
    }
}
