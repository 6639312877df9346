//! DynamoDB's batch calls answer a partial success with what they did not do
//! (`UnprocessedKeys` of BatchGetItem, `UnprocessedItems` of BatchWriteItem) instead of an
//! error. AWS's API reference for BatchWriteItem: "If DynamoDB returns any unprocessed
//! items, you should retry the batch operation on those items. However, we strongly
//! recommend that you use an exponential backoff algorithm"
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>).

use crate::runtime::error::StoreError;
use crate::runtime::retry::RetryPolicy;

/// Sends `pending` with `send`, which answers what DynamoDB left undone, and sends that
/// again after a backoff under `retry` until nothing is left. Returns how many calls it
/// took; when the attempts or the budget run out with work left, a `Throttled` error that
/// says how much (`noun`: "keys", "items").
pub(crate) async fn until_processed<P>(
    call: &'static str,
    noun: &str,
    retry: &RetryPolicy,
    mut pending: Vec<P>,
    mut send: impl AsyncFnMut(Vec<P>) -> Result<Vec<P>, StoreError>,
) -> Result<usize, StoreError> {
    let started = tokio::time::Instant::now();
    let mut calls = 0;
    while !pending.is_empty() {
        if calls > 0 {
            let wait =
                retry
                    .next_wait(calls, started.elapsed())
                    .ok_or_else(|| StoreError::Throttled {
                        call: call.into(),
                        message: format!(
                            "{} {noun} still unprocessed after {calls} attempts",
                            pending.len()
                        ),
                    })?;
            tokio::time::sleep(wait).await;
        }
        calls += 1;
        pending = send(pending).await?;
    }
    Ok(calls as usize)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            budget: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn what_is_left_is_sent_again_until_nothing_is() {
        let mut sent = Vec::new();
        let calls = until_processed("Test", "items", &quick(4), vec![1, 2, 3], async |p| {
            sent.push(p.clone());
            Ok(p.into_iter().skip(1).collect())
        })
        .await
        .unwrap();
        assert_eq!(calls, 3);
        assert_eq!(sent, [vec![1, 2, 3], vec![2, 3], vec![3]]);
    }

    #[tokio::test]
    async fn work_left_when_the_attempts_run_out_is_an_error_that_says_how_much() {
        let error = until_processed("Test", "keys", &quick(2), vec![1, 2], async |p| Ok(p))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Throttled { message, .. } if message == "2 keys still unprocessed after 2 attempts"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn nothing_to_send_is_no_call() {
        let calls = until_processed("Test", "items", &quick(1), Vec::<u8>::new(), async |_| {
            panic!("no call expected")
        })
        .await
        .unwrap();
        assert_eq!(calls, 0);
    }
}
