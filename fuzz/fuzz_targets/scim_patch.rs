//! SCIM bodies (`domain::scim::patch`, `create`, `replace`, `parse_filter`): any JSON is either
//! refused or yields a person that renders as a SCIM resource, never a panic.
#![no_main]

use clearance::domain::scim::{create, parse_filter, patch, replace, resource};
use clearance::domain::{DirectorySource, Person, SubjectKey};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_filter(text);
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let now = common::now();
    let subject = SubjectKey::parse("alice@example.com").expect("a subject");
    let existing = Person::new(subject, DirectorySource::Scim, now);
    for result in [
        patch(&existing, &body, now),
        replace(&existing, &body, now),
        create(&body, "id-1", now),
    ] {
        if let Ok(person) = result {
            let _ = resource(&person, "https://clearance.example/scim/v2");
        }
    }
});
