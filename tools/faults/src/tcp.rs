//! The TCP side of a route: a noxious proxy whose toxics are replaced at run time.

use std::sync::Arc;

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::socket::TcpListener;
use noxious::toxic::{Toxic, ToxicEvent, ToxicEventKind, ToxicEventResult};

use crate::Route;

/// A running proxy and the channel its toxics are sent through.
pub struct TcpProxy {
    route: Arc<Route>,
    toxics: bmrng::RequestSender<ToxicEvent, ToxicEventResult>,
    // Held so the proxy runs as long as the layer does.
    _stopper: Stopper,
}

impl TcpProxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    pub async fn start(
        route: Arc<Route>,
        listen: &str,
        upstream: &str,
    ) -> Result<TcpProxy, String> {
        let config = ProxyConfig {
            name: route.name.clone(),
            listen: listen.to_owned(),
            upstream: upstream.to_owned(),
            enabled: true,
            rand_seed: None,
        };
        let (listener, info) =
            ProxyRunner::initialize_proxy::<TcpListener>(config, Toxics::empty())
                .await
                .map_err(|e| format!("{}: cannot listen on {listen}: {e}", route.name))?;
        let (sender, receiver) = bmrng::channel(16);
        let (stop, stopper) = Stop::new();
        let (_close, closer) = Close::new();
        let name = route.name.clone();
        tokio::spawn(async move {
            if let Err(e) = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await {
                tracing::error!(route = %name, error = %e, "the TCP proxy stopped");
            }
        });
        Ok(TcpProxy {
            route,
            toxics: sender,
            _stopper: stopper,
        })
    }

    /// Replaces the route's toxics; connections open now take the new ones at once.
    pub async fn set_toxics(&self, toxics: Vec<Toxic>) -> Result<(), String> {
        // One by one: noxious 1.0.4's RemoveAllToxics clears the upstream toxics only, and
        // downstream ones would pile up switch after switch.
        for installed in self.route.toxics() {
            self.send(ToxicEventKind::RemoveToxic(installed.name))
                .await?;
        }
        self.route.set_toxics(Vec::new());
        let mut named = Vec::with_capacity(toxics.len());
        for mut toxic in toxics {
            toxic.set_default_name();
            if named.iter().any(|t: &Toxic| t.name == toxic.name) {
                return Err(format!(
                    "two toxics named {} on {}",
                    toxic.name, self.route.name
                ));
            }
            self.send(ToxicEventKind::AddToxic(toxic.clone())).await?;
            self.route.count(
                format!(
                    "{} {} on {:.0} % of connections (switched on)",
                    self.route.name,
                    toxic.kind.get_name(),
                    toxic.toxicity * 100.0
                ),
                1,
            );
            named.push(toxic);
        }
        self.route.set_toxics(named);
        Ok(())
    }

    async fn send(&self, kind: ToxicEventKind) -> Result<(), String> {
        let event = ToxicEvent::new(self.route.name.clone(), kind);
        match self.toxics.send_receive(event).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{}: {e}", self.route.name)),
            Err(e) => Err(format!("{}: the proxy is gone: {e}", self.route.name)),
        }
    }
}
