//! xAPI statements as an LMS posts them (`domain::xapi::interpret_batch`): any JSON body is either
//! refused with a path naming the field or yields statements with distinct lowercase UUID ids.
#![no_main]

use clearance::domain::RequirementId;
use clearance::domain::xapi::{ActivityMapping, Context, Mappings, interpret_batch};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mappings = Mappings {
        activities: vec![ActivityMapping {
            activity_id: "https://lms.example.com/course/security-2026".into(),
            requirement: RequirementId("security-awareness".into()),
            version: "2026.1".parse().expect("a version"),
        }],
        account_home_page: Some("https://lms.example.com".into()),
    };
    let ctx = Context {
        mappings: &mappings,
        credential: "lms",
        now: common::now(),
    };
    let mut n = 0u128;
    match interpret_batch(&body, &ctx, &mut || {
        n += 1;
        uuid::Uuid::from_u128(n)
    }) {
        Ok(statements) => {
            for (i, s) in statements.iter().enumerate() {
                assert!(uuid::Uuid::parse_str(&s.id).is_ok(), "{:?}", s.id);
                assert_eq!(s.id, s.id.to_lowercase());
                assert!(statements[..i].iter().all(|t| t.id != s.id));
            }
        }
        Err(e) => assert!(!e.path.is_empty()),
    }
});
