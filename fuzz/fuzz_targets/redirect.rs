//! `rd=` redirect checking (`auth::redirect::safe_redirect`): an accepted target, resolved against
//! Clearance's own URL (raw and percent-decoded), stays on Clearance or an allowed host and carries
//! no user info.
#![no_main]

use clearance::auth::redirect::safe_redirect;
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(rd) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = vec![
        "good.example".to_owned(),
        "*.apps.example".to_owned(),
        "pinned.example:8443".to_owned(),
    ];
    let Ok(out) = safe_redirect(rd, &allowed) else {
        return;
    };
    let base = Url::parse("https://clearance.local/some/page").expect("base");
    let decoded = percent_decode_str(&out).decode_utf8_lossy().into_owned();
    for candidate in [out.as_str(), decoded.as_str()] {
        let Ok(resolved) = base.join(candidate) else {
            continue;
        };
        let host = resolved.host_str().unwrap_or_default();
        assert!(
            host == "clearance.local"
                || host == "good.example"
                || host == "pinned.example"
                || host.ends_with(".apps.example"),
            "{rd:?} -> {candidate:?} -> {resolved}"
        );
        assert!(
            resolved.username().is_empty() && resolved.password().is_none(),
            "{rd:?} -> {resolved}"
        );
        assert!(
            matches!(resolved.scheme(), "http" | "https"),
            "{rd:?} -> {resolved}"
        );
    }
});
