//! DocuSign Connect webhook bodies (`domain::esign::docusign_callback`) and their HMAC header
//! check (`docusign_signature_valid`): never panic on any body or signature header.
#![no_main]

use clearance::domain::esign::{docusign_callback, docusign_signature_valid};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = docusign_callback(data, &common::esign_mapping());
    if let Ok(text) = std::str::from_utf8(data) {
        let headers: Vec<&str> = text.lines().take(3).collect();
        assert!(!docusign_signature_valid(
            data,
            headers.iter().copied(),
            &["connect-key".to_owned()]
        ));
    }
});
