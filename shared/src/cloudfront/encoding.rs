//! CloudFront's URL-safe base64: standard base64 with `+`→`-`, `=`→`_`, `/`→`~`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encodes `bytes` the way CloudFront expects in `Policy` and `Signature`.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            other => other,
        })
        .collect()
}

/// Decodes CloudFront's URL-safe base64; `None` when it is not valid.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            other => other,
        })
        .collect();
    STANDARD.decode(standard).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replaces_the_three_characters() {
        // 0xfb 0xff 0xbf encodes to "+/+/" in standard base64; one byte pads with "==".
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "-~-~");
        assert_eq!(encode(&[0xff]), "~w__");
        assert_eq!(decode("~w__"), Some(vec![0xff]));
        assert_eq!(decode("not base64!"), None);
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = encode(&bytes);
            prop_assert!(!text.contains(['+', '=', '/']));
            prop_assert_eq!(decode(&text), Some(bytes));
        }
    }
}
