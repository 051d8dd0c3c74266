//! Helpers shared by unit tests.

/// Deterministic xorshift generator so that property tests need no extra crate.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let len = u64::try_from(items.len()).expect("small");
        items[usize::try_from(self.0 % len).expect("small")]
    }
}

/// Settings with one requirement of each kind (training, agreement, policy), applying to everyone.
pub fn settings() -> crate::config::Settings {
    crate::config::from_toml_str(
        r#"
[server]
public_url = "https://gate.example.com"
[oidc]
issuer = "https://login.example.com"
client_id = "c"
client_secret = "s"
[session]
cookie_secret = "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ=="
[audit]
key = "test-audit-key-0123456789abcdefghijklmnop"
[[requirements]]
id = "security-awareness"
kind = "training"
title = "Security awareness"
version = "2026.1"
validity_days = 365
[[requirements]]
id = "confidentiality-agreement"
kind = "agreement"
title = "Confidentiality agreement"
version = "1"
[[requirements]]
id = "acceptable-use-policy"
kind = "policy"
title = "Acceptable use policy"
version = "3.0"
[[routes]]
upstream = "http://127.0.0.1:8080"
"#,
    )
    .expect("the unit-test configuration is valid")
}
