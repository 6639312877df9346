//! Measures a Lambda function process the way Lambda runs it: a Runtime API served on
//! loopback ([`runtime_api`]), the function started fresh with Lambda's environment, and
//! init, first and warm invocations and peak memory taken from the outside ([`measure`]).
//! Any runtime client works: our Rust `bootstrap`s, the SDK-only floor, or a Python
//! handler under the official `awslambdaric`.

pub mod charts;
pub mod measure;
pub mod runtime_api;
pub mod stats;
