//! Conditional writes: DynamoDB answers a write whose condition does not hold with
//! `ConditionalCheckFailedException`, and cancels a transaction one of whose items' does
//! not hold with `TransactionCanceledException` and a reason per item. For our stores
//! either is an outcome (a duplicate, a stale update, a claim already taken), not a
//! failure.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::CancellationReason;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::item::Item;
use crate::domain::device_state::WriteOutcome;
use crate::runtime::error::StoreError;

/// An operation error that can say the write's condition refused it.
pub trait ConditionRefusal {
    fn refused_by_condition(&self) -> bool;
}

macro_rules! condition_refusal {
    ($($error:ty),*) => {$(
        impl ConditionRefusal for $error {
            fn refused_by_condition(&self) -> bool {
                self.is_conditional_check_failed_exception()
            }
        }
    )*};
}

condition_refusal!(PutItemError, UpdateItemError, DeleteItemError);

/// `Some(output)` when the write was made, `None` when its condition refused it, and the
/// classified error of the operation `call` otherwise.
pub fn conditional<O, E, R>(
    call: &str,
    result: Result<O, SdkError<E, R>>,
) -> Result<Option<O>, StoreError>
where
    E: ConditionRefusal + ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.as_service_error().is_some_and(E::refused_by_condition) => Ok(None),
        Err(err) => Err(StoreError::from_sdk(call, err)),
    }
}

/// A conditional UpdateItem's result: a failed condition is [`WriteOutcome::Stale`], a
/// business answer, not an error.
pub(crate) fn conditional_update<O, R: std::fmt::Debug + 'static>(
    call: &str,
    result: Result<
        O,
        aws_smithy_runtime_api::client::result::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            R,
        >,
    >,
) -> Result<WriteOutcome, StoreError> {
    match conditional(call, result)? {
        Some(_) => Ok(WriteOutcome::Applied),
        None => Ok(WriteOutcome::Stale),
    }
}

/// A transaction DynamoDB canceled: a reason per item, in the order the items were sent.
#[derive(Debug, Clone)]
pub struct Canceled {
    reasons: Vec<CancellationReason>,
}

impl Canceled {
    /// Item `i`'s condition did not hold.
    pub fn refused_by_condition(&self, i: usize) -> bool {
        self.reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
    }

    /// Item `i` as it was, when it asked for it (`ReturnValuesOnConditionCheckFailure`).
    pub fn item(&self, i: usize) -> Option<&Item> {
        self.reasons.get(i).and_then(|r| r.item())
    }

    /// The codes of the items that stopped the transaction (`ConditionalCheckFailed`,
    /// `TransactionConflict`, `ThrottlingError`...), for the error a caller retries on.
    pub fn codes(&self) -> Vec<&str> {
        self.reasons
            .iter()
            .filter_map(|r| r.code())
            .filter(|code| *code != "None")
            .collect()
    }
}

/// `Ok(None)` when the transaction committed, `Ok(Some(canceled))` when DynamoDB canceled
/// it, and the classified error of the operation `call` otherwise.
pub fn transaction<O, R: std::fmt::Debug + 'static>(
    call: &str,
    result: Result<O, SdkError<TransactWriteItemsError, R>>,
) -> Result<Option<Canceled>, StoreError> {
    let err = match result {
        Ok(_) => return Ok(None),
        Err(err) => err,
    };
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => {
            Ok(Some(Canceled {
                reasons: canceled.cancellation_reasons().to_vec(),
            }))
        }
        _ => Err(StoreError::from_sdk(call, err)),
    }
}
