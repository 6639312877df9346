//! Logging setup shared by every function: `tracing` through lambda_runtime's subscriber,
//! which honours Lambda's advanced logging controls (`AWS_LAMBDA_LOG_LEVEL`,
//! `AWS_LAMBDA_LOG_FORMAT=JSON`) and falls back to `RUST_LOG`.

/// Installs the subscriber; call first thing in `main`.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
