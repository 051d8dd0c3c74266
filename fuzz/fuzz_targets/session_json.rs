//! Session JSON as the store keeps it (`Session::from_json`): never panics, and what it accepts
//! serialises to JSON that reads back the same.
#![no_main]

use clearance::auth::session::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(session) = Session::from_json(text) else {
        return;
    };
    let json = serde_json::to_string(&session).expect("a session serialises");
    let again = Session::from_json(&json).expect("a serialised session reads back");
    assert_eq!(serde_json::to_string(&again).expect("serialises"), json);
});
