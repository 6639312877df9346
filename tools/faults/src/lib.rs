//! The local stack's fault layer. Each route stands between the functions (and the runner)
//! and one local service: a TCP proxy of noxious, the Rust port of Toxiproxy, whose
//! toxics (latency and jitter, stalls, cut connections, bandwidth) are switched at run
//! time; and for DynamoDB and Kinesis, behind it, an HTTP layer that answers a share of the
//! calls with the service's own throttling and server errors ([`aws`]). Nothing is faulty
//! until the control API ([`control`]) says so.

pub mod aws;
pub mod control;
pub mod http;
pub mod tcp;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use std::net::SocketAddr;
use std::sync::Arc;

use noxious::toxic::Toxic;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::aws::Service;
use crate::http::ProtocolLayer;
use crate::tcp::TcpProxy;

/// A route's faults, as `PUT /faults/<route>` takes them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// The share of calls answered with the service's errors (0 to 1).
    #[serde(default)]
    pub errors: f64,
    /// Each call held for a time drawn between these milliseconds before it is passed on
    /// (DynamoDB and Kinesis routes): latency spikes that come and go with each switch,
    /// where a TCP toxic switched on a live connection would lose the bytes it holds.
    #[serde(default)]
    pub delay_ms: Option<[u64; 2]>,
    /// Toxics as Toxiproxy's API writes them (`type`, `attributes`, `stream`, `toxicity`).
    /// Toxicity is drawn per connection when it opens.
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

/// A route and the proxy that plays its TCP faults.
pub struct Switch {
    pub route: Arc<Route>,
    pub proxy: TcpProxy,
}

impl Switch {
    /// The route's faults from now on.
    pub async fn apply(&self, faults: Faults) -> Result<(), String> {
        if let Some([low, high]) = faults.delay_ms
            && low > high
        {
            return Err(format!(
                "delay_ms [{low}, {high}]: the first is the shortest"
            ));
        }
        self.route.set_error_share(faults.errors);
        self.route.set_delay(faults.delay_ms);
        // noxious rebuilds every open connection's links on each change of toxics, and a
        // toxic holding bytes (latency) loses them then: the same toxics are left alone.
        let mut toxics = faults.toxics;
        for toxic in &mut toxics {
            toxic.set_default_name();
        }
        if toxics != self.route.toxics() {
            self.proxy.set_toxics(toxics).await?;
        }
        Ok(())
    }
}

/// Starts a route: the TCP proxy on `listen` and, for a route named `dynamodb` or
/// `kinesis`, the protocol layer between it and `upstream`.
pub async fn start_route(name: &str, listen: &str, upstream: &str) -> Result<Switch, String> {
    let service = Service::parse(name);
    let route = Arc::new(Route::new(name, service));
    let proxied = match service {
        None => upstream.to_owned(),
        Some(service) => {
            let upstream: SocketAddr = upstream
                .parse()
                .map_err(|e| format!("route {name}: {upstream}: {e}"))?;
            let inner = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            let address = inner.local_addr().map_err(|e| e.to_string())?;
            tokio::spawn(ProtocolLayer::new(route.clone(), service, upstream).serve(inner));
            address.to_string()
        }
    };
    let proxy = TcpProxy::start(route.clone(), listen, &proxied).await?;
    Ok(Switch { route, proxy })
}

/// One route's faults and what they did.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// The protocol the HTTP layer speaks, `None` for a TCP-only route.
    pub service: Option<Service>,
    /// The share of calls answered with an error, in millionths.
    error_share: AtomicU32,
    delay: Mutex<Option<[u64; 2]>>,
    toxics: Mutex<Vec<Toxic>>,
    /// Faults injected, by kind.
    injected: Mutex<BTreeMap<String, u64>>,
}

impl Route {
    pub fn new(name: &str, service: Option<Service>) -> Route {
        Route {
            name: name.to_owned(),
            service,
            error_share: AtomicU32::new(0),
            delay: Mutex::new(None),
            toxics: Mutex::new(Vec::new()),
            injected: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn error_share(&self) -> f64 {
        f64::from(self.error_share.load(Ordering::Relaxed)) / 1e6
    }

    pub fn set_error_share(&self, share: f64) {
        let millionths = (share.clamp(0.0, 1.0) * 1e6).round() as u32;
        self.error_share.store(millionths, Ordering::Relaxed);
    }

    /// The delay range of calls, if calls are delayed.
    pub fn delay(&self) -> Option<[u64; 2]> {
        self.delay.lock().ok().and_then(|d| *d)
    }

    fn set_delay(&self, delay: Option<[u64; 2]>) {
        if let Ok(mut current) = self.delay.lock() {
            *current = delay;
        }
    }

    pub fn toxics(&self) -> Vec<Toxic> {
        self.toxics.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn set_toxics(&self, toxics: Vec<Toxic>) {
        if let Ok(mut current) = self.toxics.lock() {
            *current = toxics;
        }
    }

    pub fn count(&self, kind: String, n: u64) {
        if let Ok(mut injected) = self.injected.lock() {
            *injected.entry(kind).or_default() += n;
        }
    }

    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.injected.lock().map(|i| i.clone()).unwrap_or_default()
    }
}
