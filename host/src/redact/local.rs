//! Local rules for what gitleaks' rule set leaves out or catches only by
//! luck: a value under a key that names a secret (`password=`,
//! `client_secret:`, `"api_key": "…"`), credentials in a URL's userinfo,
//! `Bearer` tokens, Azure `AccountKey=`, Docker Hub and Discord tokens.
//! Replacements keep the key, so a reader still sees what was hidden.

use regex::Regex;
use std::sync::OnceLock;

type Rules = (regex::RegexSet, Vec<(Regex, &'static str)>);

/// The local rules, and a set of them that tells in one pass which match.
pub(super) fn patterns() -> &'static Rules {
    static P: OnceLock<Rules> = OnceLock::new();
    P.get_or_init(|| {
        let rules: Vec<(Regex, &'static str)> = [
            // key=value and key: value where the key names a secret
            // (the key may carry a prefix or suffix: aws_secret_access_key,
            // DB_PASSWORD, client_secret, x-api-token)
            (r#"(?i)\b([a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|account[_-]?key|private[_-]?key|credentials?|authorization|auth|sig)[a-z0-9_.-]*)(\s*[:=]\s*|"\s*:\s*")(bearer\s+|basic\s+)?[^\s",;&]{4,}"#, "$1$2[REDACTED]"),
            (r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*", "Bearer [REDACTED]"),
            (r"\bdckr_pat_[A-Za-z0-9_-]{20,}", "[REDACTED:dockerhub-pat]"),
            (r"\b[MN][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,38}\b", "[REDACTED:discord-bot-token]"),
            (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", "[REDACTED:private-key]"),
            (r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/:@]+:[^\s/@]+@", "$1[REDACTED]@"),
        ]
        .iter()
        .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, *r)))
        .collect();
        let set = regex::RegexSet::new(rules.iter().map(|(re, _)| re.as_str()))
            .unwrap_or_else(|_| regex::RegexSet::empty());
        (set, rules)
    })
}

/// Characters that render as nothing and split a token so patterns miss it
/// (zero-width space, joiners, word joiner, BOM, soft hyphen).
pub(super) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// Object keys whose string value is a secret whatever it looks like.
pub(super) fn names_a_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "authorization",
        "private_key",
        "privatekey",
        "credential",
        "access_key",
        "accountkey",
        "account_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}
