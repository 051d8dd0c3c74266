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

/// The configuration behind [`settings`].
const THREE_REQUIREMENTS: &str = include_str!("../tests/support/three_requirements.toml");

/// Settings with one requirement of each kind (training, agreement, policy), applying to everyone.
pub fn settings() -> crate::config::Settings {
    crate::config::from_toml_str(THREE_REQUIREMENTS).expect("the unit-test configuration is valid")
}

/// A header map with `pairs` appended in order (repeated names give multi-valued headers).
pub fn header_map(pairs: &[(&str, &str)]) -> actix_web::http::header::HeaderMap {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
            HeaderValue::from_str(value).expect("valid value"),
        );
    }
    headers
}

/// Every value of header `name`, in order.
pub fn header_values(headers: &actix_web::http::header::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}
