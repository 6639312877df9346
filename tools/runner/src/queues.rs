//! The SQS queues the runner writes to (rule error actions, OnFailure destinations), by
//! name; their URLs are looked up once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

#[derive(Clone)]
pub struct Queues {
    client: aws_sdk_sqs::Client,
    urls: Arc<Mutex<HashMap<String, String>>>,
}

impl Queues {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self {
            client,
            urls: Arc::default(),
        }
    }

    pub async fn url(&self, name: &str) -> Result<String, String> {
        if let Some(url) = self.urls.lock().await.get(name) {
            return Ok(url.clone());
        }
        let found = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "queue {name}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        let url = found
            .queue_url()
            .ok_or_else(|| format!("queue {name} has no URL"))?
            .to_owned();
        self.urls.lock().await.insert(name.to_owned(), url.clone());
        Ok(url)
    }

    pub async fn send(&self, name: &str, body: &str) -> Result<(), String> {
        let url = self.url(name).await?;
        self.client
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "queue {name}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                )
            })?;
        Ok(())
    }
}
