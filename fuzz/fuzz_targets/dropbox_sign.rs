//! Dropbox Sign callbacks (`domain::esign::dropbox_sign_callback`, the `json` field's content):
//! never panic, and nothing is accepted without a valid event hash.
#![no_main]

use clearance::domain::esign::dropbox_sign_callback;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mapping = common::esign_mapping();
    for accept_test_mode in [false, true] {
        let _ = dropbox_sign_callback(data, "api-key", &mapping, accept_test_mode);
    }
});
