//! Dropbox Sign callbacks and API answers (`domain::esign::dropbox_sign_event`, the `json`
//! field's content, then `dropbox_sign_confirmed` on the same bytes as the API's answer): never
//! panic, and nothing is accepted without a valid event hash.
#![no_main]

use clearance::domain::esign::{
    DropboxSignClaim, DropboxSignEvent, dropbox_sign_confirmed, dropbox_sign_event,
};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mapping = common::esign_mapping();
    let now = chrono::DateTime::from_timestamp(1_795_685_412, 0).unwrap_or_default();
    let day = std::time::Duration::from_secs(86_400);
    let claim = match dropbox_sign_event(data, "api-key", now, day) {
        Ok(DropboxSignEvent::Confirm(claim)) => claim,
        _ => DropboxSignClaim {
            request_id: "fa5c8a0b0f492d768749333ad6fcc214c111e967".into(),
            event_at: now,
            memory_key: String::new(),
        },
    };
    for accept_test_mode in [false, true] {
        let _ = dropbox_sign_confirmed(data, &claim, &mapping, accept_test_mode);
    }
});
