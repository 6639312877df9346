//! The life of a function process, written once for every function: logging, its state
//! built once at init (clients, configuration; a failure reported by [`or_report`]), then
//! every event handed to the handler with that state, for as long as Lambda sends events.

use std::fmt::{Debug, Display};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::init::or_report;
use super::logging;

/// Runs a function: `init` builds the state, `handle` answers each event with it.
///
/// ```no_run
/// # struct Hook;
/// # impl Hook { async fn handle(&self, _: &serde_json::Value) -> serde_json::Value { serde_json::Value::Null } }
/// # async fn init() -> Result<Hook, fleetwire::runtime::config::ConfigError> { Ok(Hook) }
/// # async fn example() -> Result<(), lambda_runtime::Error> {
/// fleetwire::runtime::serve(init(), async |hook: &Hook, event: lambda_runtime::LambdaEvent<serde_json::Value>| {
///     Ok::<_, std::convert::Infallible>(hook.handle(&event.payload).await)
/// })
/// .await
/// # }
/// ```
pub async fn serve<State, InitError, Event, Response, HandleError>(
    init: impl Future<Output = Result<State, InitError>>,
    handle: impl AsyncFn(&State, LambdaEvent<Event>) -> Result<Response, HandleError>,
) -> Result<(), lambda_runtime::Error>
where
    InitError: Into<Diagnostic> + Display,
    Event: DeserializeOwned,
    Response: Serialize,
    HandleError: Into<Diagnostic> + Debug,
{
    logging::init();
    let state = or_report(init.await).await?;
    let (state, handle) = (&state, &handle);
    lambda_runtime::run(service_fn(move |event| handle(state, event))).await
}
