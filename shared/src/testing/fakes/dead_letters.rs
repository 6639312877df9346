//! The dead-letter port, keeping what it is sent.

use std::sync::Mutex;

use crate::domain::dead_letter::{DeadLetter, DeadLetterSink};
use crate::runtime::error::StoreError;
use crate::testing::{Behaviour, lock};

/// A dead-letter queue that keeps what it is sent, or fails every send.
#[derive(Debug, Default)]
pub struct RecordingDeadLetters {
    pub letters: Mutex<Vec<DeadLetter>>,
    behaviour: Mutex<Behaviour>,
}

impl RecordingDeadLetters {
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    pub fn sent(&self) -> Vec<DeadLetter> {
        lock(&self.letters).clone()
    }
}

impl DeadLetterSink for RecordingDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        let behaviour = lock(&self.behaviour).clone();
        behaviour.apply().await?;
        lock(&self.letters).extend_from_slice(letters);
        Ok(())
    }
}
