//! Directory CSV import (`directory_import::parse`): any bytes give rows or problems, never a
//! panic, and the problem report renders.
#![no_main]

use clearance::directory_import::{parse, problem_report};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Err(problems) = parse(data, common::now()) {
        let _ = problem_report("people.csv", &problems);
    }
});
