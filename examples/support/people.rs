//! The benchmark's people, shared by `bench_fixture` (which writes them to Redis) and
//! `cache_footprint` (which keeps them in a decision cache), so that both measure the same shape.

use clearance::domain::{Principal, SubjectKey};

/// Person `i`: subject and email `person<i>@bench.example`, a provider `sub` of UUID length, a
/// name, two groups, a person type and a manager.
pub fn principal(i: usize) -> anyhow::Result<Principal> {
    let email = format!("person{i}@bench.example");
    let mut p = Principal::bare(SubjectKey::parse(&email)?);
    p.provider_sub = format!("{i:08x}-7d3c-4b7e-9a51-bench");
    p.email = Some(email);
    p.name = Some(format!("Bench Person {i}"));
    p.groups = vec!["staff".into(), format!("team-{}", i % 50)];
    p.person_type = Some("employee".into());
    p.manager = Some(format!("manager{}@bench.example", i % 500));
    Ok(p)
}
