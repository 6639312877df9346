//! How a Registry row looks as a DynamoDB item, both ways.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::adapters::dynamodb::item::{Item, ItemReader, rfc3339, s};
use crate::domain::registry::{ProvisioningRecord, RegistryEntry, RegistryStatus, Serial};
use crate::runtime::error::StoreError;

pub(crate) fn registry_item(entry: &RegistryEntry) -> Item {
    let mut item: Item = [
        ("serial".to_string(), s(entry.serial.as_str())),
        ("status".to_string(), s(entry.status.as_str())),
        ("model".to_string(), s(&entry.model)),
        ("thing_name".to_string(), s(&entry.thing_name)),
        (
            "denied_attempts".to_string(),
            AttributeValue::N(entry.denied_attempts.to_string()),
        ),
    ]
    .into();
    if !entry.claim_certificate_ids.is_empty() {
        item.insert(
            "claim_certificate_ids".into(),
            AttributeValue::Ss(entry.claim_certificate_ids.clone()),
        );
    }
    if !entry.attributes.is_empty() {
        let map = entry
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), s(v)))
            .collect();
        item.insert("attributes".into(), AttributeValue::M(map));
    }
    if let Some(p) = &entry.provisioning {
        item.insert("certificate_id".into(), s(&p.certificate_id));
        item.insert("claim_certificate_id".into(), s(&p.claim_certificate_id));
        item.insert("client_id".into(), s(&p.client_id));
        item.insert("provisioned_at".into(), s(rfc3339(p.at)));
    }
    item
}

pub(crate) fn registry_entry(call: &str, item: &Item) -> Result<RegistryEntry, StoreError> {
    let r = ItemReader { call, item };
    let serial = Serial::parse(&r.string("serial")?).map_err(|e| StoreError::corrupt(call, e))?;
    let status_name = r.string("status")?;
    let status = RegistryStatus::parse(&status_name).ok_or_else(|| {
        StoreError::corrupt(
            call,
            format!("unknown status {status_name:?} for serial {serial}"),
        )
    })?;
    let provisioning = match r.optional_string("certificate_id")? {
        None => None,
        Some(certificate_id) => {
            let at_raw = r.string("provisioned_at")?;
            let at = OffsetDateTime::parse(&at_raw, &Rfc3339).map_err(|e| {
                StoreError::corrupt(call, format!("provisioned_at {at_raw:?}: {e}"))
            })?;
            Some(ProvisioningRecord {
                certificate_id,
                claim_certificate_id: r
                    .optional_string("claim_certificate_id")?
                    .unwrap_or_default(),
                client_id: r.optional_string("client_id")?.unwrap_or_default(),
                at,
            })
        }
    };
    Ok(RegistryEntry {
        serial,
        status,
        model: r.optional_string("model")?.unwrap_or_default(),
        thing_name: r.string("thing_name")?,
        claim_certificate_ids: r.string_set("claim_certificate_ids")?,
        attributes: r
            .string_map("attributes")?
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        provisioning,
        denied_attempts: r.number("denied_attempts")?.unwrap_or(0),
    })
}
