//! Redaction of secret-looking values before anything reaches a model, the
//! audit trail or a report. Conservative: it is better to hide a harmless
//! token-shaped string than to leak a credential.

use regex::Regex;
use std::sync::OnceLock;

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        [
            // key=value and key: value where the key names a secret
            // (the key may carry a prefix or suffix: aws_secret_access_key,
            // DB_PASSWORD, client_secret, x-api-token)
            (r#"(?i)\b([a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|account[_-]?key|private[_-]?key|credentials?|authorization|auth|sig)[a-z0-9_.-]*)(\s*[:=]\s*|"\s*:\s*")(bearer\s+|basic\s+)?[^\s",;&]{4,}"#, "$1$2[REDACTED]"),
            (r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*", "Bearer [REDACTED]"),
            (r"\bAKIA[0-9A-Z]{16}\b", "[REDACTED-AWS-KEY]"),
            (r"\bxox[abposr]-[A-Za-z0-9-]{8,}", "[REDACTED-SLACK-TOKEN]"),
            (r"\bgh[pousr]_[A-Za-z0-9]{20,}", "[REDACTED-GITHUB-TOKEN]"),
            (r"\bsk-[A-Za-z0-9_-]{16,}", "[REDACTED-API-KEY]"),
            (r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", "[REDACTED-STRIPE-KEY]"),
            (r"\bnpm_[A-Za-z0-9]{36}\b", "[REDACTED-NPM-TOKEN]"),
            (r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", "[REDACTED-SENDGRID-KEY]"),
            (r"\bgithub_pat_[A-Za-z0-9_]{22,}", "[REDACTED-GITHUB-TOKEN]"),
            (r"\bglpat-[A-Za-z0-9_-]{20,}", "[REDACTED-GITLAB-TOKEN]"),
            (r"\bAIza[0-9A-Za-z_-]{35}", "[REDACTED-GOOGLE-KEY]"),
            (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "[REDACTED-JWT]"),
            (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", "[REDACTED-PRIVATE-KEY]"),
            (r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/:@]+:[^\s/@]+@", "$1[REDACTED]@"),
        ]
        .iter()
        .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, *r)))
        .collect()
    })
}

/// Characters that render as nothing and split a token so patterns miss it
/// (zero-width space, joiners, word joiner, BOM, soft hyphen).
const INVISIBLE: &[char] = &[
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}',
];

/// Redacts secret-looking values in text. Invisible characters are removed
/// first, so a token split by one is still seen whole.
pub fn redact(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !INVISIBLE.contains(c)).collect();
    for (re, replacement) in patterns() {
        out = re.replace_all(&out, *replacement).into_owned();
    }
    out
}

/// Redacts every string in a JSON value, and every value under a key that
/// names a secret.
pub fn redact_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact(s)),
        Value::Array(a) => Value::Array(a.iter().map(redact_json).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let lk = k.to_ascii_lowercase();
                    let secret_key = [
                        "password",
                        "secret",
                        "token",
                        "api_key",
                        "apikey",
                        "authorization",
                    ]
                    .iter()
                    .any(|s| lk.contains(s));
                    (
                        k.clone(),
                        if secret_key && v.is_string() {
                            Value::String("[REDACTED]".into())
                        } else {
                            redact_json(v)
                        },
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_token_shapes_are_redacted() {
        let cases = [
            "db connect failed password=hunter2hunter2 host=db",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "using key AKIAIOSFODNN7EXAMPLE for s3",
            "slack token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "openai sk-proj-abcdefghijklmnop1234",
            "postgres://app:s3cr3tpass@db.internal:5432/pay",
            r#"{"api_key": "0123456789abcdef"}"#,
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "export DB_PASSWORD=correct-horse-battery",
            "client_secret: Zm9vYmFyYmF6cXV4",
            "DefaultEndpointsProtocol=https;AccountName=pay;AccountKey=bm90LWEtcmVhbC1rZXktYnV0LWxvbmc=;EndpointSuffix=core.windows.net",
            "charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
            "SENDGRID SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "token split ghp_abcdefghij\u{200B}klmnopqrstuvwxyz0123456789",
            "key AIzaSyA1234567890abcdefghijklmnopqrstuv",
        ];
        let secrets = [
            "hunter2hunter2",
            "dozjgNryP4J3jVmNHl0w5N",
            "AKIAIOSFODNN7EXAMPLE",
            "AbCdEfGhIjKlMnOp",
            "ghp_abcdef",
            "sk-proj-abcdef",
            "s3cr3tpass",
            "0123456789abcdef",
            "wJalrXUtnFEMI",
            "correct-horse",
            "Zm9vYmFyYmF6cXV4",
            "bm90LWEtcmVhbC1rZXk",
            "4eC39HqLyjWDarjtT1zdp7dc",
            "npm_abcdefghij",
            "SG.abcdefghij",
            "ghp_abcdefghij",
            "AIzaSyA1234567890",
        ];
        for (case, secret) in cases.iter().zip(secrets) {
            let r = redact(case);
            assert!(!r.contains(secret), "{case} -> {r}");
            assert!(r.contains("REDACTED"), "{case} -> {r}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let t = "GET /pay/42 200 in 13ms; 5xx ratio 0.08; revision 2 rolled out";
        assert_eq!(redact(t), t);
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
}
