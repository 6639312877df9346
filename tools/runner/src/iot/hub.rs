//! What the runner's parts share: messages as IoT Core sees them (with the publisher's
//! client id and address, which a plain MQTT subscriber never learns), the live device
//! connections, and the internal client that publishes to the broker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::iot::packet::{Version, publish_frame};

pub type ConnectionId = u64;

/// One message into IoT Core: from a device, from the data plane, or a lifecycle event.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// The publishing connection's client id (`clientid()`), when a device published it.
    pub client_id: Option<String>,
    /// Its address (`sourceip()`).
    pub source_ip: Option<IpAddr>,
    /// When IoT Core received it (`timestamp()`), epoch milliseconds.
    pub received_ms: i64,
    /// The device connection it came from; `None` for the runner's own messages.
    pub connection: Option<ConnectionId>,
}

/// What is known of one live device connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub version: Version,
    pub client_id: String,
    /// The identity it authenticated with: on IoT Core its certificate id; locally the
    /// MQTT username when it carries one.
    pub username: Option<String>,
    pub source_ip: IpAddr,
}

struct Connection {
    info: ConnectionInfo,
    inject: mpsc::UnboundedSender<Bytes>,
}

/// The live connections, for answers that go to one client only (fleet provisioning).
#[derive(Clone, Default)]
pub struct Connections(Arc<Mutex<HashMap<ConnectionId, Connection>>>);

impl Connections {
    pub fn register(
        &self,
        id: ConnectionId,
        info: ConnectionInfo,
        inject: mpsc::UnboundedSender<Bytes>,
    ) {
        self.lock().insert(id, Connection { info, inject });
    }

    pub fn remove(&self, id: ConnectionId) {
        self.lock().remove(&id);
    }

    pub fn info(&self, id: ConnectionId) -> Option<ConnectionInfo> {
        self.lock().get(&id).map(|c| c.info.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Delivers a QoS 0 PUBLISH to that connection alone; `false` when it is gone.
    pub fn deliver(&self, id: ConnectionId, topic: &str, payload: &[u8]) -> bool {
        let connections = self.lock();
        let Some(connection) = connections.get(&id) else {
            return false;
        };
        match publish_frame(connection.info.version, topic, payload) {
            Ok(frame) => connection.inject.send(frame).is_ok(),
            Err(e) => {
                tracing::error!(topic, error = %e, "cannot encode a PUBLISH");
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Connection>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The runner's own MQTT client on the broker, for messages IoT Core itself publishes
/// (lifecycle events, data-plane publishes).
#[derive(Clone)]
pub struct BrokerClient {
    client: rumqttc::AsyncClient,
}

impl BrokerClient {
    /// Connects to the broker at `host:port` and keeps the connection polled.
    pub fn connect(host: &str, port: u16) -> Self {
        let mut options =
            rumqttc::MqttOptions::new(format!("runner-{}", crate::random_hex(4)), host, port);
        options.set_keep_alive(std::time::Duration::from_secs(30));
        options.set_max_packet_size(
            crate::iot::packet::MAX_PACKET,
            crate::iot::packet::MAX_PACKET,
        );
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1024);
        tokio::spawn(async move {
            loop {
                if let Err(e) = eventloop.poll().await {
                    tracing::warn!(error = %e, "runner's broker connection lost; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        });
        Self { client }
    }

    pub async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), String> {
        self.client
            .publish_bytes(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| format!("publish to {topic}: {e}"))
    }
}
