//! Where a message goes once IoT Core has it: the runner's own messages (lifecycle events,
//! data-plane publishes) to the broker's subscribers, fleet provisioning requests to
//! provisioning, and every message through the rules.

use std::sync::Arc;

use crate::iot::hub::{BrokerClient, Message};
use crate::iot::provisioning::Provisioning;
use crate::iot::rules::RulesEngine;

#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    rules: Arc<RulesEngine>,
    provisioning: Option<Arc<Provisioning>>,
    broker: BrokerClient,
}

impl Router {
    pub fn new(
        rules: Arc<RulesEngine>,
        provisioning: Option<Arc<Provisioning>>,
        broker: BrokerClient,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                rules,
                provisioning,
                broker,
            }),
        }
    }

    pub fn rules(&self) -> &RulesEngine {
        &self.inner.rules
    }

    /// Routes one message; returns at once (the work runs in the background).
    pub fn route(&self, message: Message) {
        self.inner.rules.dispatch(&message);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            match message.connection {
                None => {
                    if let Err(e) = inner
                        .broker
                        .publish(&message.topic, message.payload.clone())
                        .await
                    {
                        tracing::error!(error = %e, "cannot publish to the broker");
                    }
                }
                Some(connection) if Provisioning::handles(&message.topic) => {
                    match &inner.provisioning {
                        Some(provisioning) => provisioning.handle(connection, &message).await,
                        None => {
                            tracing::warn!(topic = %message.topic, "fleet provisioning request, but the template has no provisioning template")
                        }
                    }
                }
                Some(_) => {}
            }
        });
    }
}
