//! Small text rules shared across layers: cutting echoed text, and what a name may be.
//! A leaf: configuration, channels and the protocol all apply them.

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
