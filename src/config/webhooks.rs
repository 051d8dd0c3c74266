//! `[webhooks]`: e-signature services (DocuSign Connect, Dropbox Sign) that report signed
//! agreements. The file types, and their validation into [`WebhookSettings`].

use super::file::VersionFile;
use crate::domain::Policy;
use crate::domain::esign::{AgreementMatch, EsignMapping, EsignTarget, MappingRule};
use crate::domain::{RequirementId, Version};
use serde::{Deserialize, Serialize};

/// `[webhooks]` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    /// `[webhooks.docusign]`: DocuSign Connect posts to `/.clearance/webhooks/docusign`.
    #[serde(default)]
    pub docusign: Option<DocusignFile>,
    /// `[webhooks.dropbox_sign]`: Dropbox Sign posts to `/.clearance/webhooks/dropbox-sign`.
    #[serde(default)]
    pub dropbox_sign: Option<DropboxSignFile>,
}

/// One secret or several: an array, or one string holding keys separated by whitespace (so that
/// a `CLEARANCE_..._FILE` may hold one key per line).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SecretList {
    One(String),
    Many(Vec<String>),
}

impl Default for SecretList {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl SecretList {
    fn keys(&self) -> Vec<String> {
        match self {
            Self::One(text) => text.split_whitespace().map(str::to_owned).collect(),
            Self::Many(keys) => keys.iter().map(|k| k.trim().to_owned()).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DocusignFile {
    /// The Connect HMAC keys; a message is accepted when any `X-DocuSign-Signature-N` matches any.
    #[serde(default)]
    pub hmac_keys: SecretList,
    /// Envelopes that match no `templates` entry complete this requirement (omit to ignore them).
    #[serde(default)]
    pub default_requirement: Option<String>,
    /// Version for `default_requirement`; default: the requirement's current version.
    #[serde(default)]
    pub default_version: Option<VersionFile>,
    #[serde(default)]
    pub templates: Vec<EsignTemplateFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DropboxSignFile {
    /// The API key of the account (or app owner) whose callbacks these are.
    #[serde(default)]
    pub api_key: String,
    #[serde(default)]
    pub default_requirement: Option<String>,
    #[serde(default)]
    pub default_version: Option<VersionFile>,
    #[serde(default)]
    pub templates: Vec<EsignTemplateFile>,
    /// Record signature requests sent in test mode (not legally binding) too.
    #[serde(default)]
    pub accept_test_mode: bool,
    /// Dropbox Sign's API, asked to confirm every "all signed" callback before anything is
    /// written. Default: `https://api.hellosign.com/v3`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Callbacks whose event is older than this are refused (replays of captured events).
    #[serde(default = "default_max_event_age")]
    pub max_event_age_secs: u64,
}

fn default_max_event_age() -> u64 {
    86_400
}

impl Default for DropboxSignFile {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            default_requirement: None,
            default_version: None,
            templates: Vec::new(),
            accept_test_mode: false,
            api_url: None,
            max_event_age_secs: default_max_event_age(),
        }
    }
}

/// Dropbox Sign's API (formerly HelloSign's).
pub const DROPBOX_SIGN_API: &str = "https://api.hellosign.com/v3";

/// An envelope or request made from `template_id` (or, for DocuSign, containing a document named
/// `document_name`) completes `requirement` at `version`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EsignTemplateFile {
    #[serde(default)]
    pub template_id: Option<String>,
    #[serde(default)]
    pub document_name: Option<String>,
    pub requirement: String,
    /// Default: the requirement's current version.
    #[serde(default)]
    pub version: Option<VersionFile>,
}

/// Validated `[webhooks]`.
#[derive(Clone, Debug, Default)]
pub struct WebhookSettings {
    pub docusign: Option<DocusignSettings>,
    pub dropbox_sign: Option<DropboxSignSettings>,
}

#[derive(Clone)]
pub struct DocusignSettings {
    pub hmac_keys: Vec<String>,
    pub mapping: EsignMapping,
}

impl std::fmt::Debug for DocusignSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocusignSettings")
            .field("hmac_keys", &format!("<{} redacted>", self.hmac_keys.len()))
            .field("mapping", &self.mapping)
            .finish()
    }
}

#[derive(Clone)]
pub struct DropboxSignSettings {
    pub api_key: String,
    pub mapping: EsignMapping,
    pub accept_test_mode: bool,
    /// The API's base URL, without a trailing `/` (`.../v3`).
    pub api_url: String,
    pub max_event_age: std::time::Duration,
}

impl std::fmt::Debug for DropboxSignSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DropboxSignSettings")
            .field("api_key", &"<redacted>")
            .field("mapping", &self.mapping)
            .field("accept_test_mode", &self.accept_test_mode)
            .field("api_url", &self.api_url)
            .field("max_event_age", &self.max_event_age)
            .finish()
    }
}

/// Shortest secret accepted (DocuSign Connect keys are 44 characters, Dropbox Sign API keys 64).
const MIN_SECRET_CHARS: usize = 16;

type Problems = Vec<(String, String)>;

fn version(p: &mut Problems, key: String, raw: &VersionFile) -> Option<Version> {
    let parsed = match raw {
        VersionFile::Text(t) => t.parse::<Version>().map_err(|e| e.to_string()),
        VersionFile::Integer(n) => u32::try_from(*n)
            .map(|major| Version { major, minor: 0 })
            .map_err(|_| format!("{n} is too large")),
        VersionFile::Float(f) => Err(format!(
            "{f} is a number with a fraction; write versions as strings, e.g. version = \"2.10\""
        )),
    };
    parsed.map_err(|m| p.push((key, m))).ok()
}

/// `requirement` (+ optional `version`) -> a target; the version may not be newer than the
/// requirement's current one, or every record would be refused.
fn target(
    p: &mut Problems,
    key: &dyn Fn(&str) -> String,
    policy: &Policy,
    requirement_key: &str,
    requirement: &str,
    version_key: &str,
    raw_version: Option<&VersionFile>,
) -> Option<EsignTarget> {
    let Some(req) = policy.get_str(requirement.trim()) else {
        p.push((
            key(requirement_key),
            format!("unknown requirement {requirement:?}"),
        ));
        return None;
    };
    let version = match raw_version {
        None => req.version,
        Some(raw) => {
            let v = version(p, key(version_key), raw)?;
            if v > req.version {
                p.push((
                    key(version_key),
                    format!(
                        "{v} is newer than requirement {:?}'s current version {}",
                        req.id.as_str(),
                        req.version
                    ),
                ));
                return None;
            }
            v
        }
    };
    Some(EsignTarget {
        requirement: RequirementId(req.id.0.clone()),
        version,
    })
}

fn mapping(
    p: &mut Problems,
    section: &str,
    policy: &Policy,
    templates: &[EsignTemplateFile],
    default_requirement: Option<&str>,
    default_version: Option<&VersionFile>,
    allow_document_name: bool,
) -> EsignMapping {
    let mut rules = Vec::new();
    for (i, t) in templates.iter().enumerate() {
        let key = |field: &str| format!("{section}.templates[{i}].{field}");
        let template_id = t.template_id.as_deref().map(str::trim);
        let document_name = t.document_name.as_deref().map(str::trim);
        let matches = match (template_id, document_name) {
            (Some(id), None) if !id.is_empty() => Some(AgreementMatch::TemplateId(id.to_owned())),
            (None, Some(name)) if allow_document_name && !name.is_empty() => {
                Some(AgreementMatch::DocumentName(name.to_owned()))
            }
            (None, Some(_)) if !allow_document_name => {
                p.push((
                    key("document_name"),
                    "is not supported here; map by template_id".into(),
                ));
                None
            }
            _ => {
                p.push((
                    key("template_id"),
                    if allow_document_name {
                        "give exactly one of template_id or document_name (not empty)".into()
                    } else {
                        "is required (not empty)".into()
                    },
                ));
                None
            }
        };
        let target = target(
            p,
            &key,
            policy,
            "requirement",
            &t.requirement,
            "version",
            t.version.as_ref(),
        );
        if let (Some(matches), Some(target)) = (matches, target) {
            rules.push(MappingRule { matches, target });
        }
    }
    let key = |field: &str| format!("{section}.{field}");
    let default = match default_requirement {
        Some(req) => target(
            p,
            &key,
            policy,
            "default_requirement",
            req,
            "default_version",
            default_version,
        ),
        None => {
            if default_version.is_some() {
                p.push((
                    key("default_version"),
                    "only applies together with default_requirement".into(),
                ));
            }
            None
        }
    };
    if templates.is_empty() && default_requirement.is_none() {
        p.push((
            key("templates"),
            format!(
                "map agreements to a requirement with [[{section}.templates]] entries or default_requirement"
            ),
        ));
    }
    EsignMapping { rules, default }
}

/// Validates `[webhooks]`; every problem names its key.
pub(super) fn validate(f: &WebhooksFile, policy: &Policy) -> Result<WebhookSettings, Problems> {
    let mut p = Problems::new();
    let docusign = f.docusign.as_ref().map(|d| {
        let section = "webhooks.docusign";
        let hmac_keys = d.hmac_keys.keys();
        if hmac_keys.is_empty() {
            p.push((
                format!("{section}.hmac_keys"),
                "at least one Connect HMAC key is required (or set CLEARANCE_WEBHOOKS__DOCUSIGN__HMAC_KEYS_FILE)".into(),
            ));
        }
        for (i, k) in hmac_keys.iter().enumerate() {
            if k.chars().count() < MIN_SECRET_CHARS {
                p.push((
                    format!("{section}.hmac_keys[{i}]"),
                    format!("is too short to be a Connect HMAC key (at least {MIN_SECRET_CHARS} characters)"),
                ));
            }
        }
        DocusignSettings {
            mapping: mapping(
                &mut p,
                section,
                policy,
                &d.templates,
                d.default_requirement.as_deref(),
                d.default_version.as_ref(),
                true,
            ),
            hmac_keys,
        }
    });
    let dropbox_sign = f.dropbox_sign.as_ref().map(|d| {
        let section = "webhooks.dropbox_sign";
        let api_key = d.api_key.trim().to_owned();
        if api_key.is_empty() {
            p.push((
                format!("{section}.api_key"),
                "is required (or set CLEARANCE_WEBHOOKS__DROPBOX_SIGN__API_KEY_FILE)".into(),
            ));
        } else if api_key.contains(char::is_whitespace) {
            p.push((
                format!("{section}.api_key"),
                "must be one key, without spaces or line breaks".into(),
            ));
        } else if api_key.chars().count() < MIN_SECRET_CHARS {
            p.push((
                format!("{section}.api_key"),
                format!("is too short to be a Dropbox Sign API key (at least {MIN_SECRET_CHARS} characters)"),
            ));
        }
        let api_url = d.api_url.as_deref().unwrap_or(DROPBOX_SIGN_API).trim().trim_end_matches('/');
        match url::Url::parse(api_url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u)
                if u.scheme() == "http"
                    && u.host_str().is_some_and(|h| h == "localhost" || h.starts_with("127.")) => {}
            _ => p.push((
                format!("{section}.api_url"),
                format!("{api_url:?} must be an https:// URL (http:// only on loopback)"),
            )),
        }
        if d.max_event_age_secs < 60 {
            p.push((
                format!("{section}.max_event_age_secs"),
                "must be at least 60: Dropbox Sign retries a callback for a while".into(),
            ));
        }
        DropboxSignSettings {
            api_url: api_url.to_owned(),
            max_event_age: std::time::Duration::from_secs(d.max_event_age_secs),
            mapping: mapping(
                &mut p,
                section,
                policy,
                &d.templates,
                d.default_requirement.as_deref(),
                d.default_version.as_ref(),
                false,
            ),
            api_key,
            accept_test_mode: d.accept_test_mode,
        }
    });
    if p.is_empty() {
        Ok(WebhookSettings {
            docusign,
            dropbox_sign,
        })
    } else {
        Err(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn example() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/clearance.example.toml")
    }

    use super::super::tests::secrets;

    /// The example's requirements: confidentiality-agreement "1", acceptable-use-policy "3.0".
    fn policy() -> Policy {
        let settings = crate::config::load_with_env(&example(), &secrets()).unwrap();
        settings.policy.as_ref().clone()
    }

    fn parse(text: &str) -> WebhooksFile {
        toml::from_str(text).unwrap()
    }

    fn problems(text: &str) -> String {
        match validate(&parse(text), &policy()) {
            Ok(_) => panic!("expected problems"),
            Err(p) => p
                .iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn nothing_configured_is_fine() {
        let s = validate(&WebhooksFile::default(), &policy()).unwrap();
        assert!(s.docusign.is_none() && s.dropbox_sign.is_none());
    }

    #[test]
    fn valid_sections() {
        let s = validate(
            &parse(
                r#"
[docusign]
hmac_keys = ["k1-0123456789abcdef", " k2-0123456789abcdef "]
default_requirement = "confidentiality-agreement"

[[docusign.templates]]
template_id = "44d9e888-3d86-4e07-8f7a-64c1a0e5d2c1"
requirement = "confidentiality-agreement"
version = "1"

[[docusign.templates]]
document_name = "AUP.pdf"
requirement = "acceptable-use-policy"

[dropbox_sign]
api_key = "c4f3d2e1b0a99887766554433221100ffeeddccbbaa99887766554433221100"
accept_test_mode = true

[[dropbox_sign.templates]]
template_id = "c26b8a16784a872da37ea946b9ddec7c1e11dff6"
requirement = "confidentiality-agreement"
"#,
            ),
            &policy(),
        )
        .unwrap();
        let d = s.docusign.unwrap();
        assert_eq!(
            d.hmac_keys,
            vec!["k1-0123456789abcdef", "k2-0123456789abcdef"]
        );
        assert_eq!(d.mapping.rules.len(), 2);
        assert_eq!(d.mapping.rules[0].target.version.to_string(), "1.0");
        assert_eq!(
            d.mapping.rules[1].target.version.to_string(),
            "3.0",
            "defaults to the current version"
        );
        assert_eq!(
            d.mapping.default.as_ref().map(|t| t.version.to_string()),
            Some("1.0".into())
        );
        assert!(
            !format!("{d:?}").contains("k1-0123456789abcdef"),
            "keys redacted"
        );
        let ds = s.dropbox_sign.unwrap();
        assert!(ds.accept_test_mode);
        assert!(!format!("{ds:?}").contains("c4f3d2e1"), "api key redacted");
    }

    #[test]
    fn one_string_of_keys_is_split_on_whitespace() {
        let s = validate(
            &parse(
                "[docusign]\nhmac_keys = \"k1-0123456789abcdef\\nk2-0123456789abcdef\\n\"\ndefault_requirement = \"confidentiality-agreement\"\n",
            ),
            &policy(),
        )
        .unwrap();
        assert_eq!(s.docusign.unwrap().hmac_keys.len(), 2);
    }

    #[test]
    fn keys_come_from_the_environment() {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"file-key-0123456789abcdef\nrotated-key-0123456789ab\n")
            .unwrap();
        let mut api_key = tempfile::NamedTempFile::new().unwrap();
        api_key
            .write_all(b"c4f3d2e1b0a99887766554433221100ffeeddccbbaa99887766554433221100\n")
            .unwrap();
        let mut vars = secrets();
        vars.extend([
            (
                "CLEARANCE_WEBHOOKS__DOCUSIGN__HMAC_KEYS".to_string(),
                "[Yp3dZXR4bTJxK0FvV2Q0U1h1dGF2c3Z2OGp0c2Q5dz0=, b2xkLWtleS10aGF0LWlzLWJlaW5n]"
                    .to_string(),
            ),
            (
                "CLEARANCE_WEBHOOKS__DOCUSIGN__DEFAULT_REQUIREMENT".to_string(),
                "confidentiality-agreement".to_string(),
            ),
            (
                "CLEARANCE_WEBHOOKS__DROPBOX_SIGN__API_KEY_FILE".to_string(),
                api_key.path().display().to_string(),
            ),
            (
                "CLEARANCE_WEBHOOKS__DROPBOX_SIGN__DEFAULT_REQUIREMENT".to_string(),
                "confidentiality-agreement".to_string(),
            ),
        ]);
        let s = crate::config::load_with_env(&example(), &vars).unwrap();
        let d = s.webhooks.docusign.unwrap();
        assert_eq!(
            d.hmac_keys,
            vec![
                "Yp3dZXR4bTJxK0FvV2Q0U1h1dGF2c3Z2OGp0c2Q5dz0=",
                "b2xkLWtleS10aGF0LWlzLWJlaW5n"
            ]
        );
        let ds = s.webhooks.dropbox_sign.unwrap();
        assert_eq!(
            ds.api_key,
            "c4f3d2e1b0a99887766554433221100ffeeddccbbaa99887766554433221100"
        );
        // One key per line in a _FILE works for the DocuSign key list.
        let mut vars = secrets();
        vars.push((
            "CLEARANCE_WEBHOOKS__DOCUSIGN__HMAC_KEYS_FILE".to_string(),
            file.path().display().to_string(),
        ));
        vars.push((
            "CLEARANCE_WEBHOOKS__DOCUSIGN__DEFAULT_REQUIREMENT".to_string(),
            "confidentiality-agreement".to_string(),
        ));
        let s = crate::config::load_with_env(&example(), &vars).unwrap();
        assert_eq!(s.webhooks.docusign.unwrap().hmac_keys.len(), 2);
        // And a misspelt key is named like every other.
        let mut vars = secrets();
        vars.push((
            "CLEARANCE_WEBHOOKS__DOCUSIGN__HMAC_KEY".to_string(),
            "x".to_string(),
        ));
        let e = crate::config::load_with_env(&example(), &vars)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("hmac_key"), "{e}");
    }

    #[test]
    fn problems_name_their_keys() {
        let e = problems(
            r#"
[docusign]
hmac_keys = ["short"]
default_version = "1"

[[docusign.templates]]
template_id = "t"
document_name = "d"
requirement = "nope"

[[docusign.templates]]
template_id = "t2"
requirement = "confidentiality-agreement"
version = "2"

[dropbox_sign]

[[dropbox_sign.templates]]
document_name = "NDA.pdf"
requirement = "confidentiality-agreement"
"#,
        );
        for needle in [
            "webhooks.docusign.hmac_keys[0]: is too short",
            "webhooks.docusign.templates[0].template_id: give exactly one",
            "webhooks.docusign.templates[0].requirement: unknown requirement \"nope\"",
            "webhooks.docusign.templates[1].version: 2.0 is newer",
            "webhooks.docusign.default_version: only applies",
            "webhooks.dropbox_sign.api_key: is required",
            "webhooks.dropbox_sign.templates[0].document_name: is not supported",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in\n{e}");
        }
        let e = problems("[docusign]\ndefault_requirement = \"confidentiality-agreement\"\n");
        assert!(
            e.contains("webhooks.docusign.hmac_keys: at least one"),
            "{e}"
        );
        let e = problems("[dropbox_sign]\napi_key = \"c4f3d2e1b0a99887766554433221100f\"\n");
        assert!(
            e.contains("webhooks.dropbox_sign.templates: map agreements"),
            "{e}"
        );
    }
}
