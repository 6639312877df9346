//! Conditional writes: DynamoDB answers a write whose condition does not hold with
//! `ConditionalCheckFailedException`, which for our stores is an outcome (a duplicate, a
//! stale update, a claim already taken), not a failure.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::StoreError;

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
    R: std::fmt::Debug,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(err) if err.as_service_error().is_some_and(E::refused_by_condition) => Ok(None),
        Err(err) => Err(StoreError::from_sdk(call, err)),
    }
}
