//! Firmware versions, ordered the way a release engineer reads them: `1.10.0` > `1.9.3`,
//! and a pre-release (`2.0.0-rc1`) before its release.

use std::cmp::Ordering;
use std::fmt;

/// A dotted numeric version with an optional `-pre-release` suffix.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    numbers: Vec<u64>,
    pre: Option<String>,
}

impl Version {
    /// `1`, `1.4`, `1.4.2`, `2.0.0-rc1`: one to four numbers, at most 32 characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("version {text:?} {why}"));
        if text.is_empty() || text.len() > 32 {
            return bad("must be 1 to 32 characters");
        }
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        if let Some(pre) = pre
            && (pre.is_empty() || !pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
        {
            return bad("has a pre-release that is not [A-Za-z0-9.]");
        }
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 4 {
            return bad("has more than four numbers");
        }
        let mut numbers = Vec::with_capacity(parts.len());
        for part in parts {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return bad("is not dotted numbers like 1.4.2");
            }
            numbers.push(
                part.parse()
                    .map_err(|_| format!("version {text:?} is too large"))?,
            );
        }
        while numbers.len() > 1 && numbers.last() == Some(&0) {
            numbers.pop(); // 1.4 == 1.4.0 for ordering
        }
        Ok(Self {
            text: text.to_owned(),
            numbers,
            pre: pre.map(str::to_owned),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers
            .cmp(&other.numbers)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn orders_numerically_and_pre_releases_first() {
        assert!(v("1.10.0") > v("1.9.3"));
        assert!(v("2.0.0-rc1") < v("2.0.0"));
        assert!(v("2.0.0-rc2") > v("2.0.0-rc1"));
        assert!(v("2.0.0-rc1") > v("1.99"));
        assert_eq!(v("1.4").cmp(&v("1.4.0")), Ordering::Equal);
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for bad in [
            "",
            "v1.2",
            "1..2",
            "1.2.",
            "1.2.3.4.5",
            "1.2-",
            "1.2-rc#1",
            "x",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert!(Version::parse("99999999999999999999").is_err());
    }
}
