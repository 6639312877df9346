//! The Registry port in a map, with the DynamoDB adapter's rules: one claim per serial
//! and certificate, denials counted to the lock, unknown serials never written.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::registry::{
    AddOutcome, ClaimOutcome, Denial, DenialOutcome, ProvisioningClaim, ProvisioningRecord,
    Registry, RegistryEntry, RegistryStatus, RevokeOutcome, Serial, admits, counts_denials,
};
use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

/// A Registry in a map.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    entries: Mutex<HashMap<Serial, RegistryEntry>>,
    behaviour: Mutex<Behaviour>,
}

impl InMemoryRegistry {
    pub fn with_entries(entries: impl IntoIterator<Item = RegistryEntry>) -> Self {
        let registry = InMemoryRegistry::default();
        lock(&registry.entries).extend(entries.into_iter().map(|e| (e.serial.clone(), e)));
        registry
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn entry(&self, serial: &str) -> Option<RegistryEntry> {
        Serial::parse(serial)
            .ok()
            .and_then(|s| lock(&self.entries).get(&s).cloned())
    }

    async fn behave(&self) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await
    }
}

impl Registry for InMemoryRegistry {
    async fn add(&self, entry: &RegistryEntry) -> Result<AddOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        if let Some(existing) = entries.get(&entry.serial) {
            return Ok(AddOutcome::AlreadyPresent(Box::new(existing.clone())));
        }
        entries.insert(entry.serial.clone(), entry.clone());
        Ok(AddOutcome::Added)
    }

    async fn get(&self, serial: &Serial) -> Result<Option<RegistryEntry>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.entries).get(serial).cloned())
    }

    async fn find_by_thing(&self, thing_name: &str) -> Result<Option<RegistryEntry>, StoreError> {
        self.behave().await?;
        Ok(lock(&self.entries)
            .values()
            .find(|e| e.thing_name == thing_name)
            .cloned())
    }

    async fn claim(&self, claim: &ProvisioningClaim) -> Result<ClaimOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        match entries.get_mut(&claim.serial) {
            Some(entry) if admits(entry, &claim.record) => {
                // A retry keeps the first provisioning time, as the DynamoDB adapter does.
                let at = entry
                    .provisioning
                    .as_ref()
                    .map_or(claim.record.at, |p| p.at);
                entry.status = RegistryStatus::Provisioned;
                entry.provisioning = Some(ProvisioningRecord {
                    at,
                    ..claim.record.clone()
                });
                Ok(ClaimOutcome::Provisioned(entry.clone()))
            }
            current => Ok(ClaimOutcome::Refused {
                current: current.map(|e| e.clone()),
            }),
        }
    }

    async fn record_denial(&self, denial: &Denial) -> Result<DenialOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        let Some(entry) = entries
            .get_mut(&denial.serial)
            .filter(|e| counts_denials(e.status))
        else {
            return Ok(DenialOutcome::NotCounted);
        };
        entry.denied_attempts += 1;
        let attempts = entry.denied_attempts;
        if attempts >= denial.lock_after {
            entry.status = RegistryStatus::Locked;
            return Ok(DenialOutcome::Locked { attempts });
        }
        Ok(DenialOutcome::Counted { attempts })
    }

    async fn revoke(
        &self,
        serial: &Serial,
        _at: time::OffsetDateTime,
    ) -> Result<RevokeOutcome, StoreError> {
        self.behave().await?;
        let mut entries = lock(&self.entries);
        match entries.get_mut(serial) {
            None => Ok(RevokeOutcome::Unknown),
            Some(entry) => {
                let before = entry.clone();
                entry.status = RegistryStatus::Revoked;
                Ok(RevokeOutcome::Revoked(Box::new(before)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn claim(serial: &str, certificate_id: &str) -> ProvisioningClaim {
        ProvisioningClaim {
            serial: Serial::parse(serial).unwrap(),
            record: ProvisioningRecord {
                certificate_id: certificate_id.into(),
                claim_certificate_id: "claim".into(),
                client_id: "client".into(),
                at: datetime!(2026-11-25 12:00:00 UTC),
            },
        }
    }

    #[tokio::test]
    async fn fake_registry_claims_once_per_certificate() {
        let registry = InMemoryRegistry::with_entries([RegistryEntry::allowed(
            Serial::parse("SN1").unwrap(),
            "m",
            "t",
        )]);
        assert!(matches!(
            registry.claim(&claim("SN1", "cert-1")).await,
            Ok(ClaimOutcome::Provisioned(_))
        ));
        assert!(
            matches!(
                registry.claim(&claim("SN1", "cert-1")).await,
                Ok(ClaimOutcome::Provisioned(_))
            ),
            "retry"
        );
        let Ok(ClaimOutcome::Refused {
            current: Some(current),
        }) = registry.claim(&claim("SN1", "cert-2")).await
        else {
            panic!("a claim with another certificate must be refused with the current entry")
        };
        assert_eq!(current.status, RegistryStatus::Provisioned);
        assert!(matches!(
            registry.claim(&claim("SN2", "cert-1")).await,
            Ok(ClaimOutcome::Refused { current: None })
        ));
    }

    #[tokio::test]
    async fn fake_registry_locks_at_the_limit_and_never_creates_unknown_serials() {
        let registry = InMemoryRegistry::with_entries([RegistryEntry::allowed(
            Serial::parse("SN1").unwrap(),
            "m",
            "t",
        )]);
        let denial = |serial: &str| Denial {
            serial: Serial::parse(serial).unwrap(),
            reason: "wrong-claim-certificate".into(),
            at: datetime!(2026-11-25 12:00:00 UTC),
            lock_after: 2,
        };
        assert_eq!(
            registry.record_denial(&denial("SN1")).await,
            Ok(DenialOutcome::Counted { attempts: 1 })
        );
        assert_eq!(
            registry.record_denial(&denial("SN1")).await,
            Ok(DenialOutcome::Locked { attempts: 2 })
        );
        assert_eq!(
            registry.record_denial(&denial("SN1")).await,
            Ok(DenialOutcome::NotCounted)
        );
        assert_eq!(
            registry.record_denial(&denial("SN9")).await,
            Ok(DenialOutcome::NotCounted)
        );
        assert!(registry.entry("SN9").is_none());
    }

    #[tokio::test]
    async fn failing_behaviour_is_returned() {
        let registry = InMemoryRegistry::default();
        let error = StoreError::Unavailable {
            call: "x".into(),
            message: "down".into(),
        };
        registry.set_behaviour(Behaviour::Failing(error.clone()));
        assert_eq!(
            registry.get(&Serial::parse("SN1").unwrap()).await,
            Err(error)
        );
    }
}
