//! Path normalisation (`http::normalize::normalize_path`), which routes and forward-auth decide on:
//! the canonical form starts with one `/`, has no empty, `.` or `..` segments, no backslash or
//! control character, and normalising it again changes nothing.
#![no_main]

use clearance::http::normalize::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalize_path(raw) else {
        return;
    };
    let out = path.as_str();
    assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
    assert!(!out.contains("//"), "{raw:?} -> {out:?}");
    assert!(
        !out.contains('\\') && !out.chars().any(char::is_control),
        "{raw:?} -> {out:?}"
    );
    for segment in out.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "{raw:?} -> {out:?}");
    }
    if out != "/" {
        assert!(
            !out[1..].split('/').any(str::is_empty) || out.ends_with('/'),
            "{raw:?} -> {out:?}"
        );
    }
    let again = normalize_path(out).expect("a normalised path normalises");
    assert_eq!(again.as_str(), out, "not idempotent for {raw:?}");
});
