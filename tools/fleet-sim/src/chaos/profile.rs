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
    /// 50–200 ms of latency on a route in about half the windows.
    Latency,
    /// Connections cut after a few bytes or stalled past the SDK's attempt timeout, in
    /// about a third of the windows.
    Resets,
    /// All of the above at once.
    All,
}

impl Profile {
    pub fn parse(name: &str) -> Result<Profile, String> {
        match name {
            "throttle" => Ok(Profile::Throttle),
            "latency" => Ok(Profile::Latency),
            "resets" => Ok(Profile::Resets),
            "all" => Ok(Profile::All),
            other => Err(format!(
                "unknown fault profile {other:?}: throttle, latency, resets or all"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Throttle => "throttle",
            Profile::Latency => "latency",
            Profile::Resets => "resets",
            Profile::All => "all",
        }
    }

    fn throttles(self) -> bool {
        matches!(self, Profile::Throttle | Profile::All)
    }

    fn delays(self) -> bool {
        matches!(self, Profile::Latency | Profile::All)
    }

    fn resets(self) -> bool {
        matches!(self, Profile::Resets | Profile::All)
    }

    /// The faults of `route` for the next window, as `PUT /faults/<route>` takes them.
    pub fn window(self, route: &str, rng: &mut fastrand::Rng) -> Value {
        let errors = if self.throttles() && PROTOCOL_ROUTES.contains(&route) {
            0.05
        } else {
            0.0
        };
        let mut toxics = Vec::new();
        if self.delays() && rng.bool() {
            // 125 ± 75 ms: every spike between 50 and 200 ms, on the answers.
            toxics.push(json!({
                "type": "latency", "stream": "downstream", "toxicity": 1.0,
                "attributes": {"latency": 125, "jitter": 75},
            }));
        }
        if self.resets() && RESET_ROUTES.contains(&route) && rng.f64() < 0.35 {
            toxics.push(if rng.bool() {
                // Cut: the connection closes after a few hundred bytes of the request.
                json!({
                    "type": "limit_data", "stream": "upstream", "toxicity": 0.5,
                    "attributes": {"bytes": rng.u64(64..2048)},
                })
            } else {
                // Stall: nothing flows, then the connection closes after 3 s, past the
                // functions' 2 s attempt timeout.
                json!({
                    "type": "timeout", "stream": "upstream", "toxicity": 0.3,
                    "attributes": {"timeout": 3000},
                })
            });
        }
        json!({"errors": errors, "toxics": toxics})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(profile: Profile, route: &str) -> Vec<Value> {
        let mut rng = fastrand::Rng::with_seed(11);
        (0..200).map(|_| profile.window(route, &mut rng)).collect()
    }

    fn kinds(windows: &[Value]) -> std::collections::BTreeSet<String> {
        windows
            .iter()
            .flat_map(|w| w["toxics"].as_array().cloned().unwrap_or_default())
            .map(|t| t["type"].as_str().unwrap_or_default().to_owned())
            .collect()
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
        }
    }

    #[test]
    fn latency_comes_and_goes_within_50_to_200_ms() {
        let all = windows(Profile::Latency, "mqtt");
        let on = all
            .iter()
            .filter(|w| w["toxics"].as_array().is_some_and(|t| !t.is_empty()));
        let on = on.count();
        assert!((60..140).contains(&on), "latency in {on} of 200 windows");
        for window in &all {
            for toxic in window["toxics"].as_array().into_iter().flatten() {
                let a = &toxic["attributes"];
                let (latency, jitter) = (a["latency"].as_u64(), a["jitter"].as_u64());
                assert_eq!((latency, jitter), (Some(125), Some(75)));
            }
        }
    }

    #[test]
    fn resets_cut_and_stall_the_aws_routes_but_not_the_broker() {
        assert_eq!(
            kinds(&windows(Profile::Resets, "dynamodb"))
                .into_iter()
                .collect::<Vec<_>>(),
            ["limit_data", "timeout"]
        );
        assert!(kinds(&windows(Profile::Resets, "mqtt")).is_empty());
    }

    #[test]
    fn all_is_every_profile_at_once() {
        let all = windows(Profile::All, "kinesis");
        assert!(all.iter().all(|w| w["errors"] == 0.05));
        assert_eq!(
            kinds(&all).into_iter().collect::<Vec<_>>(),
            ["latency", "limit_data", "timeout"]
        );
    }

    #[test]
    fn profiles_are_named() {
        for name in ["throttle", "latency", "resets", "all"] {
            assert_eq!(Profile::parse(name).map(Profile::name), Ok(name));
        }
        assert!(Profile::parse("kills").is_err());
    }
}
