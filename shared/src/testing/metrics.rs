//! The business metrics a test's handler counted, read back as the EMF documents the
//! function writes after an invocation: one test per function binary calls [`record`]
//! first, runs a decision, and finds its count with [`counted`]. The recorder is the
//! process's, so other tests' counts may be mixed in; the test asks for at least its own.

use serde_json::Value;

use crate::runtime::metrics;

/// The function name the documents carry in their `Function` dimension.
pub const FUNCTION: &str = "fleetwire-test-function";

/// Installs the EMF recorder in this test process (once).
pub fn record() {
    metrics::init(FUNCTION);
}

/// Every document counted since the last flush, as the function would write them after an
/// invocation with this request and trace id.
pub fn flushed(request_id: &str, trace_id: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    metrics::flush(&mut out, request_id, trace_id);
    String::from_utf8(out)
        .expect("EMF is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each EMF document is one JSON line"))
        .collect()
}

/// The count of `metric` over the documents, only those whose `dimension` has `value`
/// when one is given. Checks each document's EMF metadata on the way: the namespace, the
/// `Function` dimension, and the metric declared in `CloudWatchMetrics`.
pub fn counted(documents: &[Value], metric: &str, dimension: Option<(&str, &str)>) -> u64 {
    let mut total = 0;
    for document in documents {
        let Some(value) = document.get(metric).and_then(Value::as_u64) else {
            continue;
        };
        let declared = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], metrics::NAMESPACE, "{document}");
        assert_eq!(document["Function"], FUNCTION, "{document}");
        let dimensions = declared["Dimensions"][0]
            .as_array()
            .expect("a dimension set");
        assert!(dimensions.contains(&Value::from("Function")), "{document}");
        assert!(
            declared["Metrics"]
                .as_array()
                .is_some_and(|m| m.iter().any(|d| d["Name"] == metric)),
            "{metric} is not declared in {document}"
        );
        if let Some((name, wanted)) = dimension
            && (!dimensions.contains(&Value::from(name)) || document[name] != wanted)
        {
            continue;
        }
        total += value;
    }
    total
}
