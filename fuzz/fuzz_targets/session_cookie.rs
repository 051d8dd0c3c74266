//! Session and login-state cookie opening (`auth::session::open_sealed`): hostile cookie values
//! never panic and never open without the key; any value sealed with the key opens to itself.
#![no_main]

use actix_web::cookie::{Cookie, CookieJar, Key};
use clearance::auth::session::open_sealed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Key::from(&[7u8; 64]);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a cookie value sent by a browser: must not open (forging needs the key).
    let opened = open_sealed(&key, "clearance", text);
    if let Some(value) = &opened {
        panic!("a value not sealed by us opened: {text:?} -> {value:?}");
    }
    // As a plaintext: sealing then opening gives it back, under that name only.
    let mut jar = CookieJar::new();
    jar.private_mut(&key)
        .add(Cookie::new("clearance", text.to_owned()));
    let sealed = jar.get("clearance").expect("just added").value().to_owned();
    assert_eq!(
        open_sealed(&key, "clearance", &sealed).as_deref(),
        Some(text)
    );
    assert_eq!(open_sealed(&key, "clearance_login", &sealed), None);
});
