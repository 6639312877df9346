//! Staged rollouts: which devices a rollout reaches, which release a device is offered,
//! and when a rollout must stop itself.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Version;

/// Buckets a percentage is measured in: 10,000 gives steps of 0.01 %.
pub const BUCKETS: u32 = 10_000;

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutStatus {
    /// Offered to the devices its percentage reaches.
    Active,
    /// Stopped, by its failure rate or an operator; offered to nobody.
    Paused,
    /// Finished by an operator; offered to nobody.
    Completed,
    /// Stopped for good by an operator (`fleetctl rollout abort`); offered to nobody.
    Aborted,
}

impl RolloutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Paused => "PAUSED",
            Self::Completed => "COMPLETED",
            Self::Aborted => "ABORTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ACTIVE" => Some(Self::Active),
            "PAUSED" => Some(Self::Paused),
            "COMPLETED" => Some(Self::Completed),
            "ABORTED" => Some(Self::Aborted),
            _ => None,
        }
    }
}

/// One row of the Rollouts table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub rollout_id: String,
    pub model: String,
    /// The release offered (a Firmware row of `model`).
    pub version: String,
    /// Share of the model's devices reached, 0 to 100 (two decimals count).
    pub percentage: f64,
    /// Pause when failures / (successes + failures) exceeds this (0 to 1) ...
    pub failure_threshold: f64,
    /// ... once at least this many devices have finished.
    pub min_sample: u64,
    /// Whether devices on a newer version are offered this older one.
    #[serde(default)]
    pub allow_downgrade: bool,
    pub status: RolloutStatus,
    #[serde(default)]
    pub successes: u64,
    #[serde(default)]
    pub failures: u64,
}

impl Rollout {
    /// A new ACTIVE rollout with no outcomes yet and no downgrades.
    pub fn active(
        rollout_id: impl Into<String>,
        model: impl Into<String>,
        version: impl Into<String>,
        percentage: f64,
        failure_threshold: f64,
        min_sample: u64,
    ) -> Self {
        Self {
            rollout_id: rollout_id.into(),
            model: model.into(),
            version: version.into(),
            percentage,
            failure_threshold,
            min_sample,
            allow_downgrade: false,
            status: RolloutStatus::Active,
            successes: 0,
            failures: 0,
        }
    }

    /// Whether the rollout's percentage reaches `device_id`. Raising the percentage only
    /// adds devices: a device's bucket never changes.
    pub fn reaches(&self, device_id: &str) -> bool {
        let limit = (self.percentage.clamp(0.0, 100.0) * f64::from(BUCKETS) / 100.0).round();
        f64::from(bucket(device_id, &self.rollout_id)) < limit
    }

    /// The failure rate once the minimum sample is in: `None` before that.
    pub fn failure_rate(&self) -> Option<f64> {
        let finished = self.successes + self.failures;
        (finished > 0 && finished >= self.min_sample)
            .then(|| self.failures as f64 / finished as f64)
    }

    /// Whether an ACTIVE rollout must pause now.
    pub fn must_pause(&self) -> bool {
        self.status == RolloutStatus::Active
            && self
                .failure_rate()
                .is_some_and(|rate| rate > self.failure_threshold)
    }
}

/// A device's stable bucket in a rollout, 0 to 9,999: SHA-256 of `rollout_id`, a zero
/// byte and `device_id`. Salting with the rollout keeps the first 5 % of one rollout from
/// being the same devices in every rollout.
pub fn bucket(device_id: &str, rollout_id: &str) -> u32 {
    let mut hash = Sha256::new();
    hash.update(rollout_id.as_bytes());
    hash.update([0]);
    hash.update(device_id.as_bytes());
    let digest = hash.finalize();
    let top = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (top % u64::from(BUCKETS)) as u32
}

/// The answer to "is there firmware for me?", before any URL is signed.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice<'a> {
    /// Offer this rollout's release.
    Offer(&'a Rollout),
    /// Nothing to install; `reason` says why.
    UpToDate(&'static str),
}

/// Picks the release for a device of `model` running `current`, from the model's
/// rollouts: only ACTIVE ones that reach the device; a newer version than `current`, or an
/// older one when the rollout allows downgrades; the highest such version wins (rollout id
/// breaks ties, so the answer is stable). Rollouts whose version does not parse are skipped.
pub fn choose<'a>(
    device_id: &str,
    model: &str,
    current: &Version,
    rollouts: &'a [Rollout],
) -> Choice<'a> {
    let mut reached_any = false;
    let mut best: Option<(Version, &Rollout)> = None;
    for rollout in rollouts {
        if rollout.model != model
            || rollout.status != RolloutStatus::Active
            || !rollout.reaches(device_id)
        {
            continue;
        }
        let Ok(target) = Version::parse(&rollout.version) else {
            continue;
        };
        reached_any = true;
        let wanted = target > *current || (rollout.allow_downgrade && target < *current);
        if !wanted {
            continue;
        }
        let better = match &best {
            None => true,
            Some((version, chosen)) => {
                target > *version || (target == *version && rollout.rollout_id < chosen.rollout_id)
            }
        };
        if better {
            best = Some((target, rollout));
        }
    }
    match best {
        Some((_, rollout)) => Choice::Offer(rollout),
        None if reached_any => Choice::UpToDate("already on the version its rollouts offer"),
        None => Choice::UpToDate("no active rollout of this model includes the device"),
    }
}

/// How long a firmware URL stays valid: `base` plus the time to fetch `size` bytes at the
/// slowest link speed planned for, capped at `max` (all seconds).
pub fn url_lifetime(size: u64, base: u64, slowest_bytes_per_second: u64, max: u64) -> u64 {
    let transfer = size.div_ceil(slowest_bytes_per_second.max(1));
    base.saturating_add(transfer).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn rollout(id: &str, version: &str, percentage: f64) -> Rollout {
        Rollout::active(id, "sensor-x", version, percentage, 0.2, 10)
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    proptest! {
        #[test]
        fn raising_the_percentage_only_adds_devices(
            device in "[a-z0-9-]{1,24}", rollout_id in "[a-z0-9-]{1,16}",
            low in 0.0f64..=100.0, high in 0.0f64..=100.0,
        ) {
            let (low, high) = if low <= high { (low, high) } else { (high, low) };
            let bucket_now = bucket(&device, &rollout_id);
            prop_assert_eq!(bucket_now, bucket(&device, &rollout_id), "stable");
            prop_assert!(bucket_now < BUCKETS);
            let small = rollout(&rollout_id, "2.0", low);
            let large = rollout(&rollout_id, "2.0", high);
            prop_assert!(!small.reaches(&device) || large.reaches(&device));
        }
    }

    #[test]
    fn percentage_reaches_about_that_share() {
        let ten = rollout("r-1", "2.0", 10.0);
        let reached = (0..20_000)
            .filter(|i| ten.reaches(&format!("car-{i}")))
            .count();
        assert!(
            (1_700..2_300).contains(&reached),
            "{reached} of 20000 at 10 %"
        );
        assert!(!rollout("r-1", "2.0", 0.0).reaches("car-1"));
        assert!((0..1000).all(|i| rollout("r-1", "2.0", 100.0).reaches(&format!("car-{i}"))));
    }

    #[test]
    fn rollouts_pick_different_devices() {
        let a = rollout("r-a", "2.0", 5.0);
        let b = rollout("r-b", "2.0", 5.0);
        let both = (0..20_000)
            .map(|i| format!("car-{i}"))
            .filter(|d| a.reaches(d) && b.reaches(d));
        assert!(both.count() < 200, "salted by rollout id");
    }

    #[test]
    fn offers_the_newest_eligible_release() {
        let rollouts = [
            rollout("r-1", "1.5.0", 100.0),
            rollout("r-2", "1.10.0", 100.0),
        ];
        let choice = choose("car-1", "sensor-x", &v("1.4.2"), &rollouts);
        assert_eq!(choice, Choice::Offer(&rollouts[1]));
    }

    #[test]
    fn up_to_date_and_not_reached_are_explained() {
        let rollouts = [rollout("r-1", "1.5.0", 100.0)];
        assert_eq!(
            choose("car-1", "sensor-x", &v("1.5.0"), &rollouts),
            Choice::UpToDate("already on the version its rollouts offer")
        );
        assert_eq!(
            choose("car-1", "other-model", &v("1.0"), &rollouts),
            Choice::UpToDate("no active rollout of this model includes the device")
        );
        let none = [rollout("r-1", "1.5.0", 0.0)];
        assert!(matches!(
            choose("car-1", "sensor-x", &v("1.0"), &none),
            Choice::UpToDate(_)
        ));
    }

    #[test]
    fn no_downgrade_unless_the_rollout_says_so() {
        let mut rollouts = [rollout("r-1", "1.3.0", 100.0)];
        assert!(matches!(
            choose("car-1", "sensor-x", &v("1.4.2"), &rollouts),
            Choice::UpToDate(_)
        ));
        rollouts[0].allow_downgrade = true;
        assert_eq!(
            choose("car-1", "sensor-x", &v("1.4.2"), &rollouts),
            Choice::Offer(&rollouts[0])
        );
    }

    #[test]
    fn paused_and_completed_rollouts_are_not_offered() {
        let mut rollouts = [rollout("r-1", "2.0", 100.0), rollout("r-2", "1.9", 100.0)];
        rollouts[0].status = RolloutStatus::Paused;
        assert_eq!(
            choose("car-1", "sensor-x", &v("1.0"), &rollouts),
            Choice::Offer(&rollouts[1])
        );
        rollouts[1].status = RolloutStatus::Completed;
        assert!(matches!(
            choose("car-1", "sensor-x", &v("1.0"), &rollouts),
            Choice::UpToDate(_)
        ));
    }

    #[test]
    fn pauses_only_past_the_threshold_after_the_minimum_sample() {
        let mut r = rollout("r-1", "2.0", 10.0);
        r.failures = 5; // 5 of 5 failed, but the sample is 10
        assert!(!r.must_pause());
        r.successes = 5; // 50 % of 10
        assert!(r.must_pause());
        r.failures = 1;
        r.successes = 9; // 10 % of 10, under 20 %
        assert!(!r.must_pause());
        r.failures = 2;
        r.successes = 8; // exactly 20 %: not past it
        assert!(!r.must_pause());
        r.failures = 3;
        r.status = RolloutStatus::Paused;
        assert!(!r.must_pause(), "already paused");
    }

    #[test]
    fn url_lifetime_grows_with_size_and_is_capped() {
        assert_eq!(url_lifetime(0, 900, 16_384, 86_400), 900);
        assert_eq!(url_lifetime(16_384 * 100, 900, 16_384, 86_400), 1_000);
        assert_eq!(url_lifetime(u64::MAX, 900, 16_384, 86_400), 86_400);
        assert_eq!(url_lifetime(10, 900, 0, 86_400), 910);
    }
}
