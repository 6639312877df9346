//! The MQTT endpoint devices connect to: a pass-through to the broker (mosquitto) that
//! sees what IoT Core sees. Every packet is forwarded unchanged; on the way the front
//! door learns each connection's client id, username and address, hands every PUBLISH to
//! the router with that context (for `clientid()`, `sourceip()` and fleet provisioning),
//! and publishes lifecycle events when sessions start and end:
//!
//! - `connected` when the broker accepts the CONNECT;
//! - `disconnected` when either side closes, with IoT Core's reason:
//!   `CLIENT_INITIATED_DISCONNECT` after a DISCONNECT packet, `DUPLICATE_CLIENTID` when a
//!   newer connection took the client id, `SERVER_INITIATED_DISCONNECT` when the broker
//!   closed it (keep-alive, protocol error), `CONNECTION_LOST` when the socket just ended
//!   (a device SDK's `stop()` closes it without DISCONNECT).
//!
//! `versionNumber` counts a client id's connections and starts again from 0 once the
//! client id has been disconnected for an hour, and `sessionIdentifier` is new for each,
//! as on IoT Core ("Lifecycle events" in the IoT Core developer guide).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::iot::hub::{ConnectionId, ConnectionInfo, Connections, Message};
use crate::iot::packet::{Seen, Version, inspect, next_frame};
use crate::iot::router::Router;

/// The client ids with a live session, and each client id's connection count.
#[derive(Default)]
struct Sessions {
    current: HashMap<String, ConnectionId>,
    versions: HashMap<String, Numbering>,
    /// Connections whose client id a newer connection took.
    superseded: HashSet<ConnectionId>,
}

/// How long a client id stays disconnected before IoT Core numbers its connections from 0
/// again ("about an hour", AWS says).
const VERSION_RESET_AFTER: Duration = Duration::from_secs(3600);

/// A client id's connection numbers.
#[derive(Debug, Default)]
struct Numbering {
    last: Option<i64>,
    disconnected_since: Option<Instant>,
}

impl Numbering {
    /// The number of a new connection at `now`.
    fn next(&mut self, now: Instant) -> i64 {
        let reset = self
            .disconnected_since
            .take()
            .is_some_and(|since| now.duration_since(since) >= VERSION_RESET_AFTER);
        let next = match self.last {
            Some(last) if !reset => last + 1,
            _ => 0,
        };
        self.last = Some(next);
        next
    }
}

/// The session of one accepted connection.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    version: i64,
    principal: String,
}

#[derive(Clone)]
pub struct FrontDoor {
    broker: SocketAddr,
    connections: Connections,
    router: Router,
    sessions: Arc<Mutex<Sessions>>,
    next_id: Arc<AtomicU64>,
}

impl FrontDoor {
    pub fn new(broker: SocketAddr, connections: Connections, router: Router) -> Self {
        Self {
            broker,
            connections,
            router,
            sessions: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Accepts device connections until the listener fails.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((socket, peer)) => {
                    let door = self.clone();
                    tokio::spawn(async move { door.connection(socket, peer).await });
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept MQTT connections");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connection(self, device: TcpStream, peer: SocketAddr) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let broker = match TcpStream::connect(self.broker).await {
            Ok(broker) => broker,
            Err(e) => {
                tracing::error!(%peer, broker = %self.broker, error = %e, "the broker does not answer; closing the device connection");
                return;
            }
        };
        let _ = device.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        let (mut device_read, mut device_write) = device.into_split();
        let (mut broker_read, mut broker_write) = broker.into_split();
        // Everything written to the device goes through one channel: the broker's packets
        // and the runner's own (answers for this client only).
        let (to_device, mut outbox) = mpsc::unbounded_channel::<Bytes>();
        let writer = tokio::spawn(async move {
            while let Some(frame) = outbox.recv().await {
                if device_write.write_all(&frame).await.is_err() {
                    break;
                }
            }
            let _ = device_write.shutdown().await;
        });

        let state = Arc::new(Mutex::new(ConnectionState::default()));
        let upstream = {
            let state = state.clone();
            let door = self.clone();
            let to_device = to_device.clone();
            async move {
                let mut buffer = BytesMut::with_capacity(8192);
                loop {
                    match device_read.read_buf(&mut buffer).await {
                        Ok(0) | Err(_) => return End::Device,
                        Ok(_) => {}
                    }
                    loop {
                        let frame = match next_frame(&mut buffer) {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(%peer, error = %e, "closing a connection that does not speak MQTT");
                                return End::Device;
                            }
                        };
                        door.on_device_packet(id, peer, &state, &frame, &to_device);
                        if broker_write.write_all(&frame).await.is_err() {
                            return End::Broker;
                        }
                    }
                }
            }
        };
        let downstream = {
            let state = state.clone();
            let door = self.clone();
            async move {
                let mut buffer = BytesMut::with_capacity(8192);
                loop {
                    match broker_read.read_buf(&mut buffer).await {
                        Ok(0) | Err(_) => return End::Broker,
                        Ok(_) => {}
                    }
                    while let Ok(Some(frame)) = next_frame(&mut buffer) {
                        door.on_broker_packet(id, peer, &state, &frame);
                        if to_device.send(frame.freeze()).is_err() {
                            return End::Device;
                        }
                    }
                }
            }
        };
        let ended = tokio::select! {
            end = upstream => end,
            end = downstream => end,
        };
        writer.abort();
        self.connections.remove(id);
        let state = std::mem::take(&mut *state.lock().unwrap_or_else(|p| p.into_inner()));
        self.end_session(id, state, ended);
    }

    fn on_device_packet(
        &self,
        id: ConnectionId,
        peer: SocketAddr,
        state: &Mutex<ConnectionState>,
        frame: &[u8],
        to_device: &mpsc::UnboundedSender<Bytes>,
    ) {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        let seen = match inspect(state.version, frame) {
            Ok(seen) => seen,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "packet not read (forwarded as it is)");
                return;
            }
        };
        match seen {
            Seen::Connect {
                version,
                client_id,
                username,
            } => {
                state.version = Some(version);
                state.client_id = client_id.clone();
                state.username = username.clone();
                // The broker drops an older connection with this client id now.
                let mut sessions = self.sessions();
                if let Some(older) = sessions.current.get(&client_id).copied()
                    && older != id
                {
                    sessions.superseded.insert(older);
                }
                drop(sessions);
                self.connections.register(
                    id,
                    ConnectionInfo {
                        version,
                        client_id,
                        username,
                        source_ip: peer.ip(),
                    },
                    to_device.clone(),
                );
            }
            Seen::Publish {
                topic,
                topic_alias,
                payload,
            } => {
                let topic = match (topic.is_empty(), topic_alias) {
                    (false, Some(alias)) => {
                        state.aliases.insert(alias, topic.clone());
                        topic
                    }
                    (false, None) => topic,
                    (true, Some(alias)) => match state.aliases.get(&alias) {
                        Some(topic) => topic.clone(),
                        None => return,
                    },
                    (true, None) => return,
                };
                self.router.route(Message {
                    topic,
                    payload,
                    client_id: Some(state.client_id.clone()),
                    source_ip: Some(peer.ip()),
                    received_ms: now_ms(),
                    connection: Some(id),
                });
            }
            Seen::Disconnect => state.disconnect_sent = true,
            Seen::ConnAck { .. } | Seen::Other => {}
        }
    }

    fn on_broker_packet(
        &self,
        id: ConnectionId,
        peer: SocketAddr,
        state: &Mutex<ConnectionState>,
        frame: &[u8],
    ) {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        if state.session.is_some() || frame.first().map(|b| b >> 4) != Some(2) {
            return;
        }
        let Ok(Seen::ConnAck { accepted: true }) = inspect(state.version, frame) else {
            return;
        };
        let client_id = state.client_id.clone();
        let version = {
            let mut sessions = self.sessions();
            sessions.current.insert(client_id.clone(), id);
            sessions
                .versions
                .entry(client_id.clone())
                .or_default()
                .next(Instant::now())
        };
        let session = Session {
            id: crate::random_hex(16),
            version,
            principal: state
                .username
                .clone()
                .unwrap_or_else(|| format!("local-{client_id}")),
        };
        tracing::info!(client_id, %peer, session = %session.id, "connected");
        self.lifecycle(
            "connected",
            &client_id,
            json!({
                "clientId": client_id,
                "timestamp": now_ms(),
                "eventType": "connected",
                "sessionIdentifier": session.id,
                "principalIdentifier": session.principal,
                "ipAddress": peer.ip().to_string(),
                "versionNumber": session.version,
            }),
        );
        state.session = Some(session);
    }

    fn end_session(&self, id: ConnectionId, state: ConnectionState, ended: End) {
        let superseded = {
            let mut sessions = self.sessions();
            if sessions.current.get(&state.client_id) == Some(&id) {
                sessions.current.remove(&state.client_id);
                if let Some(numbering) = sessions.versions.get_mut(&state.client_id) {
                    numbering.disconnected_since = Some(Instant::now());
                }
            }
            sessions.superseded.remove(&id)
        };
        let Some(session) = state.session else {
            return;
        };
        let reason = if state.disconnect_sent {
            "CLIENT_INITIATED_DISCONNECT"
        } else if superseded {
            "DUPLICATE_CLIENTID"
        } else if matches!(ended, End::Broker) {
            "SERVER_INITIATED_DISCONNECT"
        } else {
            "CONNECTION_LOST"
        };
        tracing::info!(client_id = %state.client_id, reason, "disconnected");
        self.lifecycle(
            "disconnected",
            &state.client_id,
            json!({
                "clientId": state.client_id,
                "timestamp": now_ms(),
                "eventType": "disconnected",
                "sessionIdentifier": session.id,
                "principalIdentifier": session.principal,
                "clientInitiatedDisconnect": state.disconnect_sent,
                "disconnectReason": reason,
                "versionNumber": session.version,
            }),
        );
    }

    fn lifecycle(&self, kind: &str, client_id: &str, event: serde_json::Value) {
        self.router.route(Message {
            topic: format!("$aws/events/presence/{kind}/{client_id}"),
            payload: Bytes::from(event.to_string()),
            client_id: None,
            source_ip: None,
            received_ms: now_ms(),
            connection: None,
        });
    }
}

/// Which side ended a connection.
#[derive(Debug, Clone, Copy)]
enum End {
    Device,
    Broker,
}

#[derive(Default)]
struct ConnectionState {
    version: Option<Version>,
    client_id: String,
    username: Option<String>,
    session: Option<Session>,
    disconnect_sent: bool,
    /// MQTT 5 topic aliases the device set.
    aliases: HashMap<u16, String>,
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_numbered_from_zero_and_again_after_an_hour_disconnected() {
        let start = Instant::now();
        let mut numbering = Numbering::default();
        assert_eq!(numbering.next(start), 0);
        numbering.disconnected_since = Some(start);
        assert_eq!(numbering.next(start + Duration::from_secs(59 * 60)), 1);
        assert_eq!(
            numbering.next(start + Duration::from_secs(59 * 60 + 1)),
            2,
            "a kick"
        );
        numbering.disconnected_since = Some(start + Duration::from_secs(3600));
        assert_eq!(numbering.next(start + Duration::from_secs(2 * 3600)), 0);
    }
}
