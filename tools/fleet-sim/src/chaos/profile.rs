//! The named fault profiles: which faults each route of the fault layer gets in each window
//! of a run. Each window draws afresh, so faults come and go while the fleet talks.

use std::time::Duration;

use serde_json::{Value, json};

/// How long one draw of faults lasts.
pub const WINDOW: Duration = Duration::from_secs(3);

/// The routes `scripts/stack` gives the fault layer (FLEETWIRE_FAULTS=1).
pub const ROUTES: [&str; 4] = ["dynamodb", "kinesis", "moto", "mqtt"];

/// The routes whose service speaks a protocol the layer can answer with errors.
const PROTOCOL_ROUTES: [&str; 2] = ["dynamodb", "kinesis"];

/// The routes whose connections are cut and stalled: the AWS services, whose SDK clients
/// retry on a new connection. The runner's one connection to mosquitto gets latency only.
const RESET_ROUTES: [&str; 3] = ["dynamodb", "kinesis", "moto"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// 5 % of DynamoDB and Kinesis calls answered with throttling or server errors.
    Throttle,
    /// 50–200 ms spikes: every DynamoDB and Kinesis call in about half the windows, half
    /// the connections to moto and mosquitto all along.
    Latency,
    /// A tenth of the connections to DynamoDB, Kinesis and moto cut after their first
    /// kilobyte, a twentieth stalled past the SDK's attempt timeout.
    Resets,
    /// Processes killed at random moments: the functions' (`cargo lambda watch`, started
    /// again), DynamoDB Local's (started again), kinesis-mock frozen a few seconds.
    Kills,
    /// Throttle, latency and resets at once: what AWS's services do on a bad day, with no
    /// process killed.
    Services,
    /// All of the above at once.
    All,
}

/// What the kills strike, in turn (shuffled once a round): `scripts/stack kill TARGET`.
/// `lambda` is `cargo lambda watch` with every function process in it, invocations in
/// flight included: watch does not start a new process for one killed alone (measured),
/// so the whole local Lambda goes down and comes back, as Lambda replaces execution
/// environments.
pub const KILL_TARGETS: [&str; 3] = ["lambda", "dynamodb", "kinesis"];

/// Seconds between two kills, drawn between these.
pub const KILL_EVERY: std::ops::Range<u64> = 3..7;

impl Profile {
    pub fn parse(name: &str) -> Result<Profile, String> {
        match name {
            "throttle" => Ok(Profile::Throttle),
            "latency" => Ok(Profile::Latency),
            "resets" => Ok(Profile::Resets),
            "kills" => Ok(Profile::Kills),
            "services" => Ok(Profile::Services),
            "all" => Ok(Profile::All),
            other => Err(format!(
                "unknown fault profile {other:?}: throttle, latency, resets, kills, services or all"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Throttle => "throttle",
            Profile::Latency => "latency",
            Profile::Resets => "resets",
            Profile::Kills => "kills",
            Profile::Services => "services",
            Profile::All => "all",
        }
    }

    fn throttles(self) -> bool {
        matches!(self, Profile::Throttle | Profile::Services | Profile::All)
    }

    fn delays(self) -> bool {
        matches!(self, Profile::Latency | Profile::Services | Profile::All)
    }

    fn resets(self) -> bool {
        matches!(self, Profile::Resets | Profile::Services | Profile::All)
    }

    pub fn kills(self) -> bool {
        matches!(self, Profile::Kills | Profile::All)
    }

    /// The faults of `route` for the next window, as `PUT /faults/<route>` takes them.
    /// Protocol faults (errors, delayed calls) are drawn afresh each window; TCP toxics are
    /// the same all run long and strike a share of the connections as they open: noxious
    /// loses the bytes a latency toxic holds whenever a route's toxics change, which is
    /// not a fault TCP has. (The fault layer leaves unchanged toxics alone.)
    pub fn window(self, route: &str, rng: &mut fastrand::Rng) -> Value {
        let protocol = PROTOCOL_ROUTES.contains(&route);
        let errors = if self.throttles() && protocol {
            0.05
        } else {
            0.0
        };
        // Spikes of 50 to 200 ms on every call, in about half the windows.
        let delay_ms = (self.delays() && protocol && rng.bool()).then_some([50, 200]);
        let mut toxics = Vec::new();
        if self.delays() && !protocol {
            // 125 ± 75 ms on half the connections, on the requests. Not on the answers:
            // noxious's latency toxic downstream loses a delayed answer when the server
            // closes the connection right behind it (moto answers HTTP/1.0 so).
            toxics.push(json!({
                "type": "latency", "stream": "upstream", "toxicity": 0.5,
                "attributes": {"latency": 125, "jitter": 75},
            }));
        }
        if self.resets() && RESET_ROUTES.contains(&route) {
            // Cut: one connection in ten closes after its first kilobyte sent.
            toxics.push(json!({
                "type": "limit_data", "stream": "upstream", "toxicity": 0.1,
                "attributes": {"bytes": 1024},
            }));
            // Stall: one in twenty carries nothing, then closes after 3 s, past the
            // functions' 2 s attempt timeout.
            toxics.push(json!({
                "type": "timeout", "stream": "upstream", "toxicity": 0.05,
                "attributes": {"timeout": 3000},
            }));
        }
        json!({"errors": errors, "delay_ms": delay_ms, "toxics": toxics})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(profile: Profile, route: &str) -> Vec<Value> {
        let mut rng = fastrand::Rng::with_seed(11);
        (0..200).map(|_| profile.window(route, &mut rng)).collect()
    }

    fn kinds(windows: &[Value]) -> Vec<String> {
        let mut kinds: Vec<String> = windows
            .iter()
            .flat_map(|w| w["toxics"].as_array().cloned().unwrap_or_default())
            .map(|t| t["type"].as_str().unwrap_or_default().to_owned())
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    fn delayed(windows: &[Value]) -> usize {
        windows.iter().filter(|w| !w["delay_ms"].is_null()).count()
    }

    #[test]
    fn throttle_is_errors_on_the_protocol_routes_only() {
        for route in ROUTES {
            let all = windows(Profile::Throttle, route);
            let expected = if PROTOCOL_ROUTES.contains(&route) {
                0.05
            } else {
                0.0
            };
            assert!(all.iter().all(|w| w["errors"] == expected), "{route}");
            assert!(kinds(&all).is_empty(), "{route}");
            assert_eq!(delayed(&all), 0, "{route}");
        }
    }

    #[test]
    fn latency_delays_calls_in_some_windows_and_slows_half_the_other_connections() {
        let calls = windows(Profile::Latency, "dynamodb");
        let on = delayed(&calls);
        assert!(
            (60..140).contains(&on),
            "calls delayed in {on} of 200 windows"
        );
        assert!(
            calls
                .iter()
                .all(|w| w["delay_ms"].is_null() || w["delay_ms"] == json!([50, 200]))
        );
        assert!(kinds(&calls).is_empty());
        let broker = windows(Profile::Latency, "mqtt");
        assert_eq!(delayed(&broker), 0);
        let toxic = &broker[0]["toxics"][0];
        assert_eq!(toxic["attributes"], json!({"latency": 125, "jitter": 75}));
        assert_eq!(toxic["toxicity"], 0.5);
    }

    #[test]
    fn toxics_stay_the_same_all_run_long() {
        for profile in [Profile::Latency, Profile::Resets, Profile::All] {
            for route in ROUTES {
                let all = windows(profile, route);
                assert!(
                    all.iter().all(|w| w["toxics"] == all[0]["toxics"]),
                    "{route}"
                );
            }
        }
    }

    #[test]
    fn resets_cut_and_stall_the_aws_routes_but_not_the_broker() {
        assert_eq!(
            kinds(&windows(Profile::Resets, "dynamodb")),
            ["limit_data", "timeout"]
        );
        assert!(kinds(&windows(Profile::Resets, "mqtt")).is_empty());
    }

    #[test]
    fn all_is_every_profile_at_once() {
        let calls = windows(Profile::All, "kinesis");
        assert!(calls.iter().all(|w| w["errors"] == 0.05));
        assert!(delayed(&calls) > 0);
        assert_eq!(kinds(&calls), ["limit_data", "timeout"]);
        assert_eq!(
            kinds(&windows(Profile::All, "moto")),
            ["latency", "limit_data", "timeout"]
        );
        assert_eq!(kinds(&windows(Profile::All, "mqtt")), ["latency"]);
    }

    #[test]
    fn profiles_are_named() {
        for name in ["throttle", "latency", "resets", "kills", "services", "all"] {
            assert_eq!(Profile::parse(name).map(Profile::name), Ok(name));
        }
        assert!(Profile::parse("everything").is_err());
        assert!(Profile::Kills.kills() && Profile::All.kills() && !Profile::Resets.kills());
        assert!(!Profile::Services.kills());
        let mut a = fastrand::Rng::with_seed(2);
        let mut b = fastrand::Rng::with_seed(2);
        for route in ROUTES {
            assert_eq!(
                Profile::Services.window(route, &mut a),
                Profile::All.window(route, &mut b),
                "services is all but the kills"
            );
        }
    }
}
