//! Server-rendered pages (blocked, errors, signed out) from templates embedded in the binary.

use minijinja::Environment;
use serde::Serialize;
use std::sync::LazyLock;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Templates are compiled into the binary; a broken one fails the unit tests below.
    let sources = [
        ("base.html", include_str!("../../templates/base.html")),
        ("blocked.html", include_str!("../../templates/blocked.html")),
        ("message.html", include_str!("../../templates/message.html")),
        ("warning.html", include_str!("../../templates/warning.html")),
        ("manage.html", include_str!("../../templates/manage.html")),
        (
            "manage_person.html",
            include_str!("../../templates/manage_person.html"),
        ),
        (
            "manage_exemptions.html",
            include_str!("../../templates/manage_exemptions.html"),
        ),
        (
            "requirement.html",
            include_str!("../../templates/requirement.html"),
        ),
    ];
    for (name, source) in sources {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(page.template = name, error.message = %e, "template does not compile");
        }
    }
    env
});

/// Renders a template; on failure returns a minimal escaped page rather than nothing.
pub fn render<S: Serialize>(name: &str, context: S) -> String {
    match TEMPLATES.get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(page.template = name, error.message = %e, "page rendering failed");
            "<!doctype html><title>Clearance</title><p>Clearance could not render this page.</p>"
                .into()
        }
    }
}

/// A page with a title, a message and an optional action.
#[derive(Serialize)]
pub struct Message<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub action_url: Option<&'a str>,
    pub action_label: Option<&'a str>,
    pub code: &'a str,
    pub status: u16,
    pub request_id: Option<&'a str>,
}

/// One unmet requirement as shown on the blocked page and in its JSON twin.
#[derive(Serialize, Clone, Debug)]
pub struct BlockedItem {
    /// The requirement id.
    pub requirement: String,
    pub title: String,
    pub kind: &'static str,
    pub description: Option<String>,
    pub reason: &'static str,
    pub explanation: &'static str,
    pub completed_at: Option<String>,
    pub valid_until: Option<String>,
    pub held_version: Option<String>,
    pub current_version: String,
    pub url: Option<String>,
    pub action: &'static str,
    /// For `warn` items: the day from which it blocks.
    pub due: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub struct BlockedPerson {
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Everything the blocked page shows.
#[derive(Serialize, Clone, Debug)]
pub struct BlockedView {
    pub person: BlockedPerson,
    pub host: String,
    pub items: Vec<BlockedItem>,
    pub retry_url: String,
    pub request_id: String,
}

/// The `warn` interstitial: what is due, and a form to continue for now.
#[derive(Serialize, Clone, Debug)]
pub struct WarningView {
    pub person: BlockedPerson,
    pub host: String,
    pub items: Vec<BlockedItem>,
    pub csrf: String,
    pub rd: String,
    /// Comma-separated requirement ids being acknowledged.
    pub requirements: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_and_escape() {
        for name in [
            "base.html",
            "blocked.html",
            "message.html",
            "warning.html",
            "requirement.html",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
        let html = render(
            "message.html",
            Message {
                title: "<b>t</b>",
                message: "m",
                detail: None,
                action_url: None,
                action_label: None,
                code: "c",
                status: 400,
                request_id: None,
            },
        );
        assert!(
            html.contains("&lt;b&gt;t&lt;") && !html.contains("<b>"),
            "{html}"
        );
    }
}
