//! The HTTP API's routes (`AWS::ApiGatewayV2::Route`) as the local API Gateway plays them.

use serde_json::Value;
use stack::template::{Resolver, Template};

use super::*;

/// A route: `METHOD /path` (no path parameters, no `$default`), a Lambda proxy
/// integration (`Target: !Sub "integrations/${Integration}"`) and IAM or JWT authorization.
pub(super) fn http_route(
    template: &Template,
    resolver: &Resolver,
    id: &str,
    props: &Value,
) -> Result<HttpRoute, WiringError> {
    let route_key = resolver.text(id, props.get("RouteKey").unwrap_or(&Value::Null))?;
    let (method, path) = route_key
        .split_once(' ')
        .filter(|(_, path)| path.starts_with('/') && !path.contains('{'))
        .ok_or_else(|| {
            unsupported(
                id,
                format!("RouteKey {route_key:?}: the runner plays `METHOD /path` routes without parameters"),
            )
        })?;
    let resource = |logical_id: &str, kind: &str| {
        template
            .resources
            .iter()
            .find(|r| r.logical_id == logical_id && r.kind == kind)
    };
    let integration_id = props
        .pointer("/Target/Fn::Sub")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix("integrations/${"))
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| unsupported(id, "Target must be !Sub \"integrations/${<Integration>}\""))?;
    let integration = resource(integration_id, "AWS::ApiGatewayV2::Integration")
        .ok_or_else(|| unsupported(id, format!("no integration {integration_id}")))?;
    for (property, played, why) in [
        (
            "IntegrationType",
            "AWS_PROXY",
            "the runner plays AWS_PROXY (Lambda) integrations only",
        ),
        (
            "PayloadFormatVersion",
            "2.0",
            "the runner plays PayloadFormatVersion 2.0 only",
        ),
    ] {
        if integration.properties.get(property).and_then(Value::as_str) != Some(played) {
            return Err(unsupported(integration_id, why));
        }
    }
    let function = integration
        .properties
        .get("IntegrationUri")
        .and_then(referenced_resource)
        .ok_or_else(|| {
            unsupported(
                integration_id,
                "IntegrationUri must be !GetAtt <Function>.Arn",
            )
        })?;
    let auth = match props.get("AuthorizationType").and_then(Value::as_str) {
        Some("AWS_IAM") => RouteAuth::Iam,
        Some("JWT") => {
            let authorizer_id = props
                .get("AuthorizerId")
                .and_then(referenced_resource)
                .ok_or_else(|| {
                    unsupported(id, "a JWT route needs AuthorizerId: !Ref <Authorizer>")
                })?;
            let authorizer = resource(&authorizer_id, "AWS::ApiGatewayV2::Authorizer")
                .ok_or_else(|| unsupported(id, format!("no authorizer {authorizer_id}")))?;
            let config = resolver.resolve(
                &authorizer_id,
                authorizer
                    .properties
                    .get("JwtConfiguration")
                    .unwrap_or(&Value::Null),
            )?;
            let issuer = config
                .get("Issuer")
                .and_then(Value::as_str)
                .filter(|i| !i.is_empty())
                .ok_or_else(|| unsupported(&authorizer_id, "JwtConfiguration.Issuer is empty"))?
                .to_owned();
            let audiences = config
                .get("Audience")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            RouteAuth::Jwt { issuer, audiences }
        }
        other => {
            return Err(unsupported(
                id,
                format!(
                    "AuthorizationType {other:?}: the runner plays AWS_IAM and JWT routes (no anonymous ones)"
                ),
            ));
        }
    };
    Ok(HttpRoute {
        method: method.to_owned(),
        path: path.to_owned(),
        route_key: route_key.clone(),
        function,
        auth,
    })
}
