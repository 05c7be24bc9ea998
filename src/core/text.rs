//! Small text rules shared across layers: cutting echoed text, what a name may be,
//! comparing a presented secret in constant time, and keeping a URL's secrets out of text. A leaf: configuration, channels, the
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

/// A comma-separated list of URLs or origins as configured: each trimmed, its trailing
/// slashes dropped, empty entries left out.
pub fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// True for what an upstream endpoint may be: a `ws://` or `wss://` URL with no query (the
/// source adds its own) and no whitespace.
pub fn is_socket_url(u: &str) -> bool {
    (u.starts_with("ws://") || u.starts_with("wss://"))
        && !u.contains('?')
        && !u.contains(char::is_whitespace)
}

/// `text` (a runtime's error about `url`) with every query value of `url` replaced by `…`:
/// an upstream's URL may carry its API key (`?apikey=`), and errors end up in logs and in
/// `/health`.
pub fn redact_query(text: &str, url: &str) -> String {
    let Some((_, query)) = url.split_once('?') else {
        return text.to_string();
    };
    let values = query
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(_, v)| v));
    let mut out = text.to_string();
    for v in values.filter(|v| v.len() >= 3) {
        out = out.replace(v, "…");
    }
    out
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

/// Milliseconds since the epoch as ISO-8601 in UTC (`2024-01-01T12:00:00.000Z`).
pub fn iso8601(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_iso_8601_in_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn a_url_s_secrets_stay_out_of_an_error() {
        let url = "wss://ws.example/v1/quotes/price?apikey=s3cr3t-key";
        let e = format!("connect failed: cannot reach {url}");
        let out = redact_query(&e, url);
        assert!(!out.contains("s3cr3t-key"), "{out}");
        assert!(out.contains("apikey=…"), "{out}");
        assert_eq!(redact_query("plain", "wss://x/stream"), "plain");
    }
}
