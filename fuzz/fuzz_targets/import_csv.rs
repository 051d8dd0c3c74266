//! Records CSV import (`import::parse`): any bytes give either file-level problems or rows and
//! row problems, never a panic; every accepted record names a declared requirement.
#![no_main]

use clearance::import::parse;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let policy = common::policy();
    if let Ok(parsed) = parse(data, "fuzz.csv", &policy, common::now()) {
        let _ = clearance::import::problem_report("fuzz.csv", &parsed);
        let _ = clearance::import::dry_run_summary("fuzz.csv", &parsed);
    }
});
