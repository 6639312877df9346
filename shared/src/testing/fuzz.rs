//! Inputs for the parsers' property tests: arbitrary JSON, arbitrary text, and documents
//! near a parser's schema, made by changing one part of a real example (AWS's own example
//! events, from `events/aws-examples/`) into anything. Each parser's test asserts what the
//! parser promises: no panic, no hang, and an error that names the part it could not
//! take ([`assert_names_the_field`]).
//!
//! The cases per property are proptest's (`PROPTEST_CASES`, 256 by default); `scripts/test`
//! runs them as they are, a longer run sets `PROPTEST_CASES=100000`.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value: scalars of every kind (long and odd strings, huge and negative
/// numbers), arrays and objects nested a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String(String::new())),
        Just(Value::String("x".repeat(70_000))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Every path of `value`, the root (empty) first.
pub fn paths(value: &Value) -> Vec<Vec<Step>> {
    let mut all = vec![Vec::new()];
    let mut i = 0;
    while i < all.len() {
        let path = all[i].clone();
        match get(value, &path) {
            Some(Value::Object(map)) => {
                for key in map.keys() {
                    let mut next = path.clone();
                    next.push(Step::Key(key.clone()));
                    all.push(next);
                }
            }
            Some(Value::Array(items)) => {
                for index in 0..items.len() {
                    let mut next = path.clone();
                    next.push(Step::Index(index));
                    all.push(next);
                }
            }
            _ => {}
        }
        i += 1;
    }
    all
}

fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

/// `value` with the part at `path` replaced by `with`, or removed when `with` is `None`.
pub fn mutate(value: &Value, path: &[Step], with: Option<Value>) -> Value {
    let mut out = value.clone();
    let Some((last, parent)) = path.split_last() else {
        return with.unwrap_or(Value::Null);
    };
    let mut target = &mut out;
    for step in parent {
        target = match step {
            Step::Key(k) => &mut target[k.as_str()],
            Step::Index(i) => &mut target[*i],
        };
    }
    match (last, with, target) {
        (Step::Key(k), Some(v), target) => target[k.as_str()] = v,
        (Step::Key(k), None, Value::Object(map)) => {
            map.remove(k);
        }
        (Step::Index(i), Some(v), target) => target[*i] = v,
        (Step::Index(i), None, Value::Array(items)) => {
            items.remove(*i);
        }
        _ => {}
    }
    out
}

/// A document near `example`'s schema: one of its parts (any depth, the whole document
/// included) replaced by any JSON value or removed; with the keys of the path changed.
pub fn near(example: Value) -> impl Strategy<Value = (Value, Vec<String>)> {
    let all = paths(&example);
    let count = all.len();
    (0..count, prop::option::weighted(0.85, json_value())).prop_map(move |(i, with)| {
        let path = &all[i];
        let keys = path
            .iter()
            .filter_map(|s| match s {
                Step::Key(k) => Some(k.clone()),
                Step::Index(_) => None,
            })
            .collect();
        (mutate(&example, path, with), keys)
    })
}

/// Text near `example`: a few characters inserted, removed or replaced.
pub fn near_text(example: &str) -> impl Strategy<Value = String> + use<> {
    let chars: Vec<char> = example.chars().collect();
    let len = chars.len();
    prop::collection::vec((0..=len, 0..3usize, any::<char>()), 1..6).prop_map(move |edits| {
        let mut text = chars.clone();
        for (at, kind, c) in edits {
            let at = at.min(text.len());
            match kind {
                0 => text.insert(at, c),
                1 if at < text.len() => {
                    text.remove(at);
                }
                _ if at < text.len() => text[at] = c,
                _ => text.push(c),
            }
        }
        text.into_iter().collect()
    })
}

/// Arbitrary bytes read as text, as a parser of a body or a file would get them.
pub fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..512)
        .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// An error about a document changed at `keys` must say what it could not take: one of
/// those keys, or, for a change at the root, anything at all but nothing empty.
pub fn assert_names_the_field(error: &str, keys: &[String]) {
    assert!(
        !error.trim().is_empty(),
        "an empty error for a change at {keys:?}"
    );
    if keys.is_empty() {
        return;
    }
    assert!(
        keys.iter()
            .any(|k| !k.is_empty() && error.contains(k.as_str())),
        "the error {error:?} names none of {keys:?}"
    );
}
