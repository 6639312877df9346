//! What the AWS services did to an invocation: how many SDK calls it made, how many
//! attempts the SDK's own retries added, and which error codes the failed attempts got
//! (throttles, server errors, a connection that gave no answer). [`SdkFaults`] is an SDK
//! interceptor on every client a function builds with
//! [`traced_client!`](crate::traced_client); [`serve`](super::serve) takes the tally after
//! each invocation and, when an attempt failed, writes one log line with it, so a throttled
//! table or a stalled stream shows in the logs of the invocations it slowed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::xray::error_code;

/// The SDK's calls since the tally was last taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdkTally {
    pub calls: u64,
    pub attempts: u64,
    /// Failed attempts by error code (`ThrottlingException`, `HTTP 503`, `no answer`).
    pub errors: BTreeMap<String, u64>,
}

impl SdkTally {
    /// Attempts beyond the first of each call.
    pub fn retries(&self) -> u64 {
        self.attempts.saturating_sub(self.calls)
    }

    /// Whether anything failed: worth a log line.
    pub fn met_faults(&self) -> bool {
        !self.errors.is_empty()
    }

    /// `ThrottlingException=2, HTTP 503=1`.
    pub fn errors_text(&self) -> String {
        self.errors
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The interceptor, counting into a shared tally.
#[derive(Debug, Clone, Default)]
pub struct SdkFaults {
    tally: Arc<Mutex<SdkTally>>,
}

impl SdkFaults {
    /// The process's tally, which [`serve`](super::serve) reads after each invocation
    /// (Lambda sends a process one event at a time).
    pub fn process() -> Self {
        static PROCESS: OnceLock<SdkFaults> = OnceLock::new();
        PROCESS.get_or_init(SdkFaults::default).clone()
    }

    /// The tally so far, which starts again from nothing.
    pub fn take(&self) -> SdkTally {
        std::mem::take(&mut *self.tally.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for SdkFaults {
    fn name(&self) -> &'static str {
        "SdkFaults"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The attempt's outcome decides (a mocked answer may come with a placeholder
        // status); its response, when there is one, names the error.
        let failed = !matches!(context.output_or_error(), Some(Ok(_)));
        let failure = failed.then(|| match context.response() {
            None => "no answer".to_owned(),
            Some(r) => error_code(r.headers().get("x-amzn-errortype"), true, r.body().bytes())
                .unwrap_or_else(|| format!("HTTP {}", r.status().as_u16())),
        });
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.attempts += 1;
        if let Some(code) = failure {
            *tally.errors.entry(code).or_default() += 1;
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).calls += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
