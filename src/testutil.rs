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
