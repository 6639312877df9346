//! The life of a function process, written once for every function: logging, its state
//! built once at init (clients, configuration; a failure reported by [`or_report`]), then
//! every event handed to the handler with that state, for as long as Lambda sends events.

use std::fmt::{Debug, Display};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::init::or_report;
use super::sdk_faults::SdkFaults;
use super::{logging, metrics};

/// The function's name as Lambda gives it (`AWS_LAMBDA_FUNCTION_NAME`), else the binary's.
fn function_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| {
        std::env::args()
            .next()
            .and_then(|path| {
                std::path::Path::new(&path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "unknown".into())
    })
}

/// Runs a function: `init` builds the state, `handle` answers each event with it, and
/// after each event the business metrics it counted are written (see [`metrics`]), with a
/// line naming the retries and error codes its AWS calls met, if any failed
/// ([`sdk_faults`](super::sdk_faults)).
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
    let function = function_name();
    logging::init(&function);
    metrics::init(&function);
    let state = or_report(init.await).await?;
    let (state, handle) = (&state, &handle);
    let cold = std::sync::atomic::AtomicBool::new(true);
    let cold = &cold;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let cold_start = cold.swap(false, std::sync::atomic::Ordering::Relaxed);
        if cold_start {
            metrics::count(metrics::name::COLD_START, 1);
        }
        let context = event.context.clone();
        logging::set_invocation(Some(logging::Invocation {
            request_id: context.request_id.clone(),
            trace_id: context.xray_trace_id.clone(),
            cold_start,
        }));
        // Boxed: the handler's future is as deep as its adapters, and the runtime's own
        // nesting on top of it passes rustc's layout depth limit.
        let answer = Box::pin(handle(state, event)).await;
        let met = SdkFaults::process().take();
        if met.met_faults() {
            tracing::warn!(
                sdk_calls = met.calls,
                sdk_retries = met.retries(),
                sdk_errors = %met.errors_text(),
                "AWS calls failed or were retried during the invocation"
            );
        }
        metrics::flush(
            std::io::stdout().lock(),
            &context.request_id,
            context.xray_trace_id.as_deref(),
        );
        logging::set_invocation(None);
        answer
    }))
    .await
}
