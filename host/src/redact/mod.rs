//! Redaction: one function between everything an alert, a log line or a
//! plugin says and everything runwarden stores, indexes, shows or prompts.
//!
//! Secrets are found by gitleaks' maintained rule set ([`gitleaks`]) plus a
//! few local rules ([`local`]), on a normalised copy of the text: invisible
//! characters removed (a zero-width space splits a token so no pattern sees
//! it), JSON `\uXXXX` and `\/` escapes and URL percent-encoding decoded
//! (an encoded `password%3D…` must not slip through). A text in which
//! nothing is found is returned unchanged; one in which something is found
//! is returned normalised, with each secret replaced. Conservative: hiding a
//! harmless token-shaped string is better than leaking a credential.
//!
//! Alerts are redacted as they are parsed (`intake`), so no label,
//! annotation, summary or index entry ever holds the raw value.

pub mod gitleaks;
mod local;

/// Redacts every secret found in `text`.
pub fn redact(text: &str) -> String {
    let normal = normalise(text);
    let mut spans: Vec<(usize, usize, String)> = gitleaks::find(&normal)
        .into_iter()
        .map(|f| (f.start, f.end, format!("[REDACTED:{}]", f.rule)))
        .collect();
    spans.retain(|(s, e, _)| normal.is_char_boundary(*s) && normal.is_char_boundary(*e));
    let mut out = replace_spans(&normal, spans);
    // One pass says which local rules match at all; only those replace.
    let (set, patterns) = local::patterns();
    for i in set.matches(&out).into_iter() {
        if let Some((re, replacement)) = patterns.get(i)
            && let std::borrow::Cow::Owned(o) = re.replace_all(&out, *replacement)
        {
            out = o;
        }
    }
    if out == normal && normal != text {
        // Nothing hidden: keep the text as it came (encoded URLs stay so).
        return text.to_string();
    }
    out
}

/// Redacts every string in a JSON value, and every string under a key that
/// names a secret.
pub fn redact_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact(s)),
        Value::Array(a) => Value::Array(a.iter().map(redact_json).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let value = if local::names_a_secret(k) && v.is_string() {
                        Value::String("[REDACTED]".into())
                    } else {
                        redact_json(v)
                    };
                    (redact(k), value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Redacts a map of labels or annotations: a value under a key that names
/// a secret is hidden whole; every other value is redacted as text.
pub fn redact_pairs(
    pairs: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| {
            let value = if local::names_a_secret(k) {
                "[REDACTED]".to_string()
            } else {
                redact(v)
            };
            (k.clone(), value)
        })
        .collect()
}

/// Replaces non-overlapping spans (the earliest wins an overlap, the
/// longer on a tie).
fn replace_spans(text: &str, mut spans: Vec<(usize, usize, String)>) -> String {
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, replacement) in spans {
        if start < at {
            // Overlaps one already replaced: extend it if it reaches further.
            if end > at {
                at = end;
            }
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The text as a pattern should see it: invisible characters removed,
/// JSON escapes and percent-encoding decoded.
pub fn normalise(text: &str) -> String {
    // Most text is plain ASCII with nothing to decode: no copies.
    if text.is_ascii() && !text.contains(['\\', '%']) {
        return text.to_string();
    }
    let visible: String = text.chars().filter(|c| !local::is_invisible(*c)).collect();
    let unescaped = json_unescape(&visible);
    percent_decode(&unescaped)
}

/// `\/` and `\uXXXX` (not `\n`: a JSON-escaped PEM keeps its `\n`, which
/// the private-key patterns accept, and log lines keep their shape).
fn json_unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = &text[i + 1..];
        if rest.starts_with('/') {
            out.push('/');
            chars.next();
        } else if let Some(hex) = rest.strip_prefix('u').and_then(|r| r.get(..4))
            && let Ok(code) = u32::from_str_radix(hex, 16)
            && let Some(decoded) = char::from_u32(code).filter(|d| !d.is_control())
        {
            out.push(decoded);
            for _ in 0..5 {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out.chars().filter(|c| !local::is_invisible(*c)).collect()
}

/// `%XX` that decode to printable ASCII; anything else is left as it is.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
            && (b.is_ascii_graphic() || b == b' ')
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_common_shapes_are_hidden() {
        let cases = [
            (
                "db connect failed password=hunter2hunter2 host=db",
                "hunter2hunter2",
            ),
            (
                "postgres://app:s3cr3tpass@db.internal:5432/pay",
                "s3cr3tpass",
            ),
            (r#"{"api_key": "0123456789abcdef"}"#, "0123456789abcdef"),
            ("export DB_PASSWORD=correct-horse-battery", "correct-horse"),
            ("client_secret: Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
            (
                "DefaultEndpointsProtocol=https;AccountName=pay;AccountKey=bm90LWEtcmVhbC1rZXktYnV0LWxvbmc=;EndpointSuffix=core.windows.net",
                "bm90LWEtcmVhbC1rZXk",
            ),
            (
                "Authorization: Bearer abcdefghijklmnopqrstuvwx",
                "abcdefghijklmnop",
            ),
            (
                "token split ghp_Xk2\u{200B}m9QpL4rT7vW1yZ3bN5cD8fH0jK6sA2eG4",
                "m9QpL4rT7vW1yZ3",
            ),
            (
                "login?user=ops%26password%3Dhunter2hunter2%26x=1",
                "hunter2hunter2",
            ),
        ];
        for (case, secret) in cases {
            let r = redact(case);
            assert!(!r.contains(secret), "{case} -> {r}");
            assert!(r.contains("REDACTED"), "{case} -> {r}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for t in [
            "GET /pay/42 200 in 13ms; 5xx ratio 0.08; revision 2 rolled out",
            "GET /search?q=caf%C3%A9%20au%20lait 200",
            "pod payment-api-7d9f8c6b5-x2x9k OOMKilled; restarts 4",
        ] {
            assert_eq!(redact(t), t);
        }
    }

    #[test]
    fn json_secret_keys_are_redacted() {
        let v = serde_json::json!({"config": {"db_password": "x", "url": "https://u:p@h/"}, "lines": ["token=abcdefgh"]});
        let r = redact_json(&v).to_string();
        assert!(
            !r.contains("\"x\"") && !r.contains("u:p@") && !r.contains("abcdefgh"),
            "{r}"
        );
    }

    #[test]
    fn normalising_decodes_what_hides_a_token() {
        assert_eq!(normalise("a\u{200B}b\u{2060}c"), "abc");
        assert_eq!(normalise(r"https:\/\/h\/p \u0041"), "https://h/p A");
        assert_eq!(normalise("a%3Db%ZZ%0A"), "a=b%ZZ%0A");
    }
}

/// The corpus of `tests/fixtures/secret-corpus.toml`: fake secrets in real
/// formats, each in the context it shows up in. Shared by the unit test
/// below and the end-to-end test (`tests/redaction.rs`).
#[doc(hidden)]
pub mod corpus {
    #[derive(serde::Deserialize)]
    pub struct Corpus {
        pub secret: Vec<Secret>,
        pub benign: Vec<Benign>,
    }

    #[derive(serde::Deserialize)]
    pub struct Secret {
        pub format: String,
        pub rule: String,
        pub value: String,
        context: String,
    }

    #[derive(serde::Deserialize)]
    pub struct Benign {
        pub text: String,
    }

    impl Secret {
        /// The context with its placeholder filled in.
        pub fn text(&self) -> String {
            let zw: String = self
                .value
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    if i == 10 {
                        vec!['\u{200B}', c]
                    } else {
                        vec![c]
                    }
                })
                .collect();
            let pct: String = self
                .value
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            self.context
                .replace("{value_zw}", &zw)
                .replace("{value_pct}", &pct)
                .replace("{value}", &self.value)
        }

        /// Pieces of the secret that must not survive: the whole value
        /// and a 12-character slice from its middle (its start may be a
        /// public prefix such as `-----BEGIN RSA`).
        pub fn pieces(&self) -> Vec<String> {
            let chars: Vec<char> = self.value.chars().collect();
            let mid = chars.len() / 2;
            let slice: String = chars[mid.saturating_sub(6)..(mid + 6).min(chars.len())]
                .iter()
                .collect();
            vec![self.value.clone(), slice]
        }
    }

    pub fn parse(text: &str) -> Result<Corpus, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::*;

    #[test]
    fn every_format_of_the_corpus_is_hidden_and_every_ordinary_line_kept() {
        let corpus = corpus::parse(include_str!("../../../tests/fixtures/secret-corpus.toml"))
            .expect("the corpus parses");
        assert!(corpus.secret.len() >= 40, "{} formats", corpus.secret.len());
        let mut leaks = Vec::new();
        for s in &corpus.secret {
            let out = redact(&s.text());
            if s.pieces().iter().any(|p| out.contains(p.as_str())) {
                leaks.push(format!("{} ({}): {out}", s.format, s.rule));
            }
        }
        assert!(
            leaks.is_empty(),
            "{} leaked:\n{}",
            leaks.len(),
            leaks.join("\n")
        );
        for b in &corpus.benign {
            assert_eq!(redact(&b.text), b.text);
        }
    }
}
