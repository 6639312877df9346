//! The local stack's view of `template.yaml`: the template with SAM's Globals merged
//! ([`globals`]) and its intrinsics resolved ([`template`]), and the resources that have
//! local stand-ins ([`plan`]). The
//! `stack` binary creates them; the local runner reads the rest of the template
//! (rules, functions, event source mappings) through the same resolver.

pub mod cli;
pub mod globals;
pub mod plan;
pub mod policy;
pub mod template;

/// Local account id: moto's default, so ARNs match what moto returns.
pub const LOCAL_ACCOUNT: &str = "123456789012";
