//! One MQTT connection of a virtual device (rumqttc): connect and wait for CONNACK,
//! publish at QoS 1, receive the messages of its subscriptions, and end either politely
//! (DISCONNECT) or by dropping the socket, as a device losing its link does.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A live connection.
pub struct Session {
    client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<(String, Bytes)>,
    eventloop: JoinHandle<()>,
    /// QoS 1 publishes not acknowledged yet.
    unacknowledged: Arc<AtomicI64>,
    /// SUBACKs received so far, and a wake-up for each.
    subscribed: watch::Receiver<u64>,
}

impl Session {
    /// Connects as `client_id` (with `username`, how the runner learns a certificate id)
    /// and returns once the broker accepted.
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        username: &str,
    ) -> Result<Self, String> {
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_credentials(username, "");
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let (to_device, incoming) = mpsc::unbounded_channel();
        let (accepted, connected) = oneshot::channel::<Result<(), String>>();
        let unacknowledged = Arc::new(AtomicI64::new(0));
        let acks = unacknowledged.clone();
        let (subacks, subscribed) = watch::channel(0u64);
        let eventloop = tokio::spawn(async move {
            let mut accepted = Some(accepted);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = accepted.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acks.fetch_sub(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subacks.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let _ = to_device.send((publish.topic.clone(), publish.payload.clone()));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(tx) = accepted.take() {
                            let _ = tx.send(Err(e.to_string()));
                        }
                        return;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(15), connected).await {
            Ok(Ok(Ok(()))) => Ok(Self {
                client,
                incoming,
                eventloop,
                unacknowledged,
                subscribed,
            }),
            Ok(Ok(Err(e))) => Err(format!("{client_id}: cannot connect to {host}:{port}: {e}")),
            _ => Err(format!(
                "{client_id}: no CONNACK from {host}:{port} within 15 s"
            )),
        }
    }

    /// Subscribes and returns once the broker's SUBACK is in, as a device must before it
    /// asks for what it subscribed to: an answer published before the subscription
    /// reached the broker is not delivered (MQTT 3.1.1, 3.8.4).
    pub async fn subscribe(&mut self, filter: &str) -> Result<(), String> {
        let before = *self.subscribed.borrow_and_update();
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| format!("subscribe {filter}: {e}"))?;
        let acknowledged = self.subscribed.wait_for(|n| *n > before);
        match tokio::time::timeout(Duration::from_secs(15), acknowledged).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(format!("subscribe {filter}: the connection ended")),
            Err(_) => Err(format!("subscribe {filter}: no SUBACK within 15 s")),
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) -> Result<(), String> {
        self.unacknowledged.fetch_add(1, Ordering::SeqCst);
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| format!("publish {topic}: {e}"))
    }

    /// The next message on a topic satisfying `wanted`, within `timeout`.
    pub async fn receive(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<(String, Bytes)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some((topic, payload))) if wanted(&topic) => return Some((topic, payload)),
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
    }

    /// Sends DISCONNECT after everything queued, and waits for the connection to end.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.eventloop).await;
    }

    /// Drops the socket without a DISCONNECT (a lost link), once the broker has
    /// acknowledged every publish (a device only counts acknowledged readings as sent).
    pub async fn drop_link(self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.unacknowledged.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.eventloop.abort();
    }
}
