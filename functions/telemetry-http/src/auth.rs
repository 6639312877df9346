//! Who is calling, from what API Gateway's authorizer proved: the devices the caller may
//! write for. The function trusts only the authorizer's context, never a header or the
//! body, and a request with no authorizer context (a misrouted or local call) is refused.

use std::collections::BTreeSet;

use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use fleetwire::domain::dead_letter::caller;
use fleetwire::ingest::Sender;

/// Why a request may not write at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No identity: `401`.
    #[error("{0}")]
    Unauthenticated(String),
    /// An identity that may write for no device: `403`.
    #[error("{0}")]
    Forbidden(String),
}

/// The sender of a request:
/// - the `AWS_IAM` route (`iam.userArn`): a back end trusted with the whole fleet;
/// - the JWT route: the token's `devices_claim` (device ids separated by spaces or commas,
///   or a JSON array, which API Gateway hands over as `[a b]`), else its `sub` alone,
///   which is then the device itself.
pub fn sender_of(
    context: &ApiGatewayV2httpRequestContext,
    devices_claim: &str,
) -> Result<Sender, AuthError> {
    let Some(authorizer) = &context.authorizer else {
        return Err(AuthError::Unauthenticated(
            "no authorizer context: call the API's routes (a token or IAM signature is required)"
                .into(),
        ));
    };
    if let Some(arn) = authorizer
        .iam
        .as_ref()
        .and_then(|iam| iam.user_arn.as_deref())
    {
        return Ok(Sender::Fleet {
            caller: caller::iam(arn),
        });
    }
    if let Some(jwt) = &authorizer.jwt {
        let Some(subject) = jwt.claims.get("sub").filter(|s| !s.is_empty()) else {
            return Err(AuthError::Unauthenticated(
                "the token has no sub claim".into(),
            ));
        };
        let devices: BTreeSet<String> = match jwt.claims.get(devices_claim) {
            Some(listed) => device_list(listed),
            None => BTreeSet::from([subject.clone()]),
        };
        if devices.is_empty() {
            return Err(AuthError::Forbidden(format!(
                "the token's {devices_claim} claim names no device"
            )));
        }
        return Ok(Sender::Devices {
            caller: caller::token(subject),
            devices,
        });
    }
    Err(AuthError::Unauthenticated(
        "the authorizer context carries neither a JWT nor an IAM identity".into(),
    ))
}

fn device_list(claim: &str) -> BTreeSet<String> {
    claim
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|id| id.trim_matches('"'))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_take_every_form_api_gateway_passes() {
        let expected: BTreeSet<String> = ["car-1".into(), "car-2".into()].into();
        assert_eq!(device_list("car-1 car-2"), expected);
        assert_eq!(device_list("car-1,car-2"), expected);
        assert_eq!(device_list("[car-1 car-2]"), expected);
        assert_eq!(device_list(r#"["car-1","car-2"]"#), expected);
        assert!(device_list("[]").is_empty());
    }
}
