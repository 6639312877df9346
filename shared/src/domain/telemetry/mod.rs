//! The telemetry reading devices send, its validation and what the ingest adds to it.
//!
//! Validation walks the JSON by hand instead of deriving `Deserialize`, so that one pass
//! reports every field error at once (serde stops at the first), and fields we do not know
//! are kept for downstream consumers rather than dropped.

mod enrichment;
mod reading;
mod validation;

pub use enrichment::{EnrichedRecord, record_id};
pub use reading::{
    CLAIM_CLIENT_ID_PREFIX, DeviceId, Location, MAX_DEVICE_ID_LEN, Metadata, TelemetryRecord,
    TimestampLimits,
};
pub use validation::{FieldError, ValidationErrors, json_kind};

/// The physical ranges a reading must fall in. They bound what real sensors report, so a
/// value outside them is a broken sensor or a forged message, not weather.
pub mod ranges {
    /// °C: Earth's recorded extremes (-89.2 °C, 56.7 °C) lie inside; +150 °C is the top of
    /// automotive-grade sensors (engine bay, battery pack).
    pub const TEMPERATURE_C: (f64, f64) = (-90.0, 150.0);
    /// % relative humidity.
    pub const HUMIDITY_PCT: (f64, f64) = (0.0, 100.0);
    /// hPa: the range of common barometric sensors (BMP280/BME280: 300 to 1100 hPa);
    /// the summit of Everest is about 314 hPa.
    pub const PRESSURE_HPA: (f64, f64) = (300.0, 1100.0);
    /// Degrees, WGS 84.
    pub const LATITUDE: (f64, f64) = (-90.0, 90.0);
    pub const LONGITUDE: (f64, f64) = (-180.0, 180.0);
}

/// The fields of the IoT rule's event. The template's telemetry rule is `SELECT
/// encode(*, 'base64') AS payload_base64, topic(2) AS thing_name, timestamp() AS
/// received_at FROM 'fleet/+/telemetry'`: the payload whole, beside fields the device
/// cannot set. A rule that selects `*` beside its fields instead merges them into the
/// device's JSON (IoT Core does not document which wins a collision); the ingest still
/// reads that shape, removing these names before the reading is validated. The Python
/// peer in `bench/peers/python` lists the same names in `RULE_FIELDS`.
pub mod rule {
    /// The topic's thing name: who IoT Core authenticated.
    pub const THING_NAME: &str = "thing_name";
    /// When IoT Core received the message, in milliseconds since the epoch.
    pub const RECEIVED_AT: &str = "received_at";
    /// A payload that is not JSON, base64 encoded.
    pub const PAYLOAD_BASE64: &str = "payload_base64";
    /// All of them.
    pub const FIELDS: [&str; 3] = [THING_NAME, RECEIVED_AT, PAYLOAD_BASE64];
}
