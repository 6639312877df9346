//! The IoT data plane adapter of [`DeviceChannel`]: `Publish` at QoS 1.

use aws_sdk_iotdataplane::Client;
use aws_sdk_iotdataplane::primitives::Blob;

use crate::domain::ota::DeviceChannel;
use crate::runtime::error::StoreError;

#[derive(Debug, Clone)]
pub struct IotDataChannel {
    client: Client,
}

impl IotDataChannel {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl DeviceChannel for IotDataChannel {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic(topic)
            .qos(1)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("IoTDataPlane.Publish", e))?;
        Ok(())
    }
}
