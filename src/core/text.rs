//! Small text rules shared across layers: cutting echoed text, what a name may be, and
//! comparing a presented secret in constant time. A leaf: configuration, channels, the
//! protocol and authentication all apply them.

/// Cuts client-supplied text before it is echoed into an error message.
pub fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// A channel name's last part: 1 to 64 of `a-z`, `0-9`, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Compares a presented token with the expected one in time that depends only on their
/// lengths, so response timing does not reveal how much of a guess was right.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}
