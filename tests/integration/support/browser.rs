//! `Browser`: a test HTTP client with its own cookie jar and manual redirects, plus helpers that
//! drive the OpenID provider's login, consent and logout pages.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use scraper::{ElementRef, Html, Selector};
use url::Url;

const MAX_HOPS: usize = 20;

/// `host:port` of a URL (port defaulted by scheme), the key of the cookie jar.
pub fn host_port(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The URL that was requested (redirects are never followed by the client itself).
    pub url: Url,
    pub body: String,
}

impl Response {
    /// The first value of a header, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }

    pub fn is_redirect(&self) -> bool {
        self.status.is_redirection() && self.headers.contains_key("location")
    }

    /// The `Location` header resolved against the request URL.
    pub fn location(&self) -> Option<Url> {
        self.header("location").and_then(|l| self.url.join(l).ok())
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.body).with_context(|| {
            format!(
                "response of {} ({}) is not the expected JSON: {}",
                self.url,
                self.status,
                excerpt(&self.body)
            )
        })
    }

    /// The body parsed as an HTML document (not `Send`: keep it out of `.await`s).
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// The HTML forms on the page.
    pub fn forms(&self) -> Vec<HtmlForm> {
        HtmlForm::parse_all(&self.body, &self.url)
    }

    /// `host:port` of the request URL.
    pub fn host_port(&self) -> String {
        host_port(&self.url)
    }
}

/// An HTML form: action resolved against the page URL, fields with their initial values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlForm {
    pub id: Option<String>,
    pub action: Url,
    /// Uppercase, `GET` when absent.
    pub method: String,
    /// Named `<input>`s (excluding buttons and unchecked boxes), `<select>`s and `<textarea>`s,
    /// including those outside the form that name it with `form="id"`.
    pub fields: Vec<(String, String)>,
    /// Named submit buttons (`<button name>` or `<input type=submit name>`) as (name, value).
    pub buttons: Vec<(String, String)>,
}

impl HtmlForm {
    /// All forms of an HTML document.
    pub fn parse_all(html: &str, base: &Url) -> Vec<HtmlForm> {
        let doc = Html::parse_document(html);
        let form_sel = Selector::parse("form").expect("selector");
        let control_sel = Selector::parse("input, button, select, textarea").expect("selector");
        let all_controls: Vec<ElementRef> = doc.select(&control_sel).collect();
        doc.select(&form_sel)
            .map(|form| {
                let id = form.attr("id").map(str::to_owned);
                let action = match form.attr("action") {
                    Some(a) if !a.trim().is_empty() => {
                        base.join(a.trim()).unwrap_or_else(|_| base.clone())
                    }
                    _ => base.clone(),
                };
                let method = form.attr("method").unwrap_or("get").to_ascii_uppercase();
                let mut parsed = HtmlForm {
                    id: id.clone(),
                    action,
                    method,
                    fields: Vec::new(),
                    buttons: Vec::new(),
                };
                for control in form.select(&control_sel) {
                    // A control inside the form that names another form belongs to that one.
                    if control
                        .attr("form")
                        .is_none_or(|f| Some(f) == id.as_deref())
                    {
                        parsed.add_control(control);
                    }
                }
                if let Some(id) = &id {
                    for control in &all_controls {
                        let inside = control.ancestors().any(|a| a.id() == form.id());
                        if !inside && control.attr("form") == Some(id.as_str()) {
                            parsed.add_control(*control);
                        }
                    }
                }
                parsed
            })
            .collect()
    }

    fn add_control(&mut self, control: ElementRef) {
        let Some(name) = control.attr("name") else {
            return;
        };
        let name = name.to_owned();
        let tag = control.value().name();
        let kind = control
            .attr("type")
            .unwrap_or(if tag == "button" { "submit" } else { "text" })
            .to_ascii_lowercase();
        match (tag, kind.as_str()) {
            ("button", "submit") | ("input", "submit") | ("input", "image") => {
                let value = control.attr("value").unwrap_or_default().to_owned();
                self.buttons.push((name, value));
            }
            ("button", _) | ("input", "reset") | ("input", "button") | ("input", "file") => {}
            ("input", "checkbox") | ("input", "radio") => {
                if control.attr("checked").is_some() {
                    let value = control.attr("value").unwrap_or("on").to_owned();
                    self.fields.push((name, value));
                }
            }
            ("textarea", _) => {
                self.fields.push((name, control.text().collect()));
            }
            ("select", _) => {
                let option_sel = Selector::parse("option").expect("selector");
                let options: Vec<ElementRef> = control.select(&option_sel).collect();
                let chosen = options
                    .iter()
                    .find(|o| o.attr("selected").is_some())
                    .or(options.first());
                if let Some(option) = chosen {
                    let value = option
                        .attr("value")
                        .map(str::to_owned)
                        .unwrap_or_else(|| option.text().collect());
                    self.fields.push((name, value));
                }
            }
            _ => {
                let value = control.attr("value").unwrap_or_default().to_owned();
                self.fields.push((name, value));
            }
        }
    }

    /// The current value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a field (replacing the first of that name, or adding it).
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value.to_owned(),
            None => self.fields.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    /// The fields to submit, plus the named button `button` if given.
    pub fn submission(&self, button: Option<&str>) -> Vec<(String, String)> {
        let mut fields = self.fields.clone();
        if let Some(button) = button
            && let Some(pressed) = self.buttons.iter().find(|(n, _)| n == button)
        {
            fields.push(pressed.clone());
        }
        fields
    }
}

#[derive(Debug, Default)]
struct CookieJar {
    /// host:port -> name -> value
    hosts: HashMap<String, BTreeMap<String, String>>,
}

impl CookieJar {
    fn header_for(&self, url: &Url) -> Option<String> {
        let cookies = self.hosts.get(&host_port(url))?;
        if cookies.is_empty() {
            return None;
        }
        Some(
            cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn store(&mut self, url: &Url, set_cookie: &str) {
        let Some(cookie) = parse_set_cookie(set_cookie) else {
            return;
        };
        let jar = self.hosts.entry(host_port(url)).or_default();
        if cookie.expired {
            jar.remove(&cookie.name);
        } else {
            jar.insert(cookie.name, cookie.value);
        }
    }
}

/// A parsed `Set-Cookie` header: name, value and whether it deletes the cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetCookie {
    pub name: String,
    pub value: String,
    pub expired: bool,
}

/// Parses a `Set-Cookie` value. `Max-Age` wins over `Expires`; `Secure`, `Domain`, `Path`,
/// `SameSite` and `HttpOnly` are ignored on purpose (plain http on 127.0.0.1).
pub(crate) fn parse_set_cookie(header: &str) -> Option<SetCookie> {
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut value = value.trim();
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        value = &value[1..value.len() - 1];
    }
    let mut max_age: Option<i64> = None;
    let mut expires_past = false;
    for attr in parts {
        let (key, val) = attr.split_once('=').unwrap_or((attr, ""));
        let (key, val) = (key.trim().to_ascii_lowercase(), val.trim());
        if key == "max-age" {
            max_age = Some(val.parse().unwrap_or(0));
        } else if key == "expires"
            && let Some(at) = parse_http_date(val)
        {
            expires_past = at <= chrono::Utc::now();
        }
    }
    let expired = match max_age {
        Some(seconds) => seconds <= 0,
        None => expires_past,
    };
    Some(SetCookie {
        name: name.to_owned(),
        value: value.to_owned(),
        expired,
    })
}

fn parse_http_date(value: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let utc = |dt: chrono::DateTime<chrono::FixedOffset>| dt.with_timezone(&chrono::Utc);
    if let Ok(dt) = chrono::DateTime::parse_from_rfc2822(value) {
        return Some(utc(dt));
    }
    // Netscape style: "Thu, 01-Jan-1970 00:00:00 GMT"
    let normalized = value.replace('-', " ").replace("GMT", "+0000");
    chrono::DateTime::parse_from_str(&normalized, "%a, %d %b %Y %H:%M:%S %z")
        .ok()
        .map(utc)
}

/// An HTTP client acting as one user's browser: no automatic redirects, no reqwest cookie store,
/// its own cookie jar keyed by `host:port` (cheap to clone; clones share the jar).
#[derive(Debug, Clone)]
pub struct Browser {
    client: reqwest::Client,
    jar: Arc<Mutex<CookieJar>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .user_agent("clearance-test-browser")
            .build()
            .expect("build reqwest client");
        Browser {
            client,
            jar: Arc::default(),
        }
    }

    /// The underlying client (no cookies, no redirects), e.g. for streaming requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn get(&self, url: impl AsRef<str>) -> anyhow::Result<Response> {
        self.request(Method::GET, url, &[], None).await
    }

    pub async fn get_with(
        &self,
        url: impl AsRef<str>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        self.request(Method::GET, url, headers, None).await
    }

    /// POSTs `application/x-www-form-urlencoded`.
    pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: impl AsRef<str>,
        form: &[(K, V)],
    ) -> anyhow::Result<Response> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
            .finish();
        self.request(
            Method::POST,
            url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.into_bytes()),
        )
        .await
    }

    /// Submits a form (GET forms put the fields into the query), pressing `button` if given.
    pub async fn submit(&self, form: &HtmlForm, button: Option<&str>) -> anyhow::Result<Response> {
        let fields = form.submission(button);
        if form.method == "GET" {
            let mut url = form.action.clone();
            url.query_pairs_mut().clear().extend_pairs(fields);
            self.get(url).await
        } else {
            self.post_form(form.action.as_str(), &fields).await
        }
    }

    /// Sends one request with the jar's cookies for its host:port and stores the answer's
    /// `Set-Cookie`s. A `cookie` header in `headers` is appended to the jar's cookies.
    pub async fn request(
        &self,
        method: Method,
        url: impl AsRef<str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response> {
        let url = Url::parse(url.as_ref()).with_context(|| format!("bad URL {}", url.as_ref()))?;
        let mut header_map = HeaderMap::new();
        let mut cookie = self.jar.lock().expect("jar lock").header_for(&url);
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("cookie") {
                cookie = Some(match cookie {
                    Some(existing) => format!("{existing}; {value}"),
                    None => (*value).to_owned(),
                });
                continue;
            }
            header_map.append(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        if let Some(cookie) = cookie {
            header_map.insert("cookie", HeaderValue::from_str(&cookie)?);
        }
        if !header_map.contains_key("accept") {
            // Like a real browser, so that servers answer with pages and sign-in redirects.
            header_map.insert(
                "accept",
                HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
            );
        }
        let mut builder = self
            .client
            .request(method.clone(), url.clone())
            .headers(header_map);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let resp = builder
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        {
            let mut jar = self.jar.lock().expect("jar lock");
            for set_cookie in headers.get_all("set-cookie") {
                jar.store(&url, &String::from_utf8_lossy(set_cookie.as_bytes()));
            }
        }
        let body = resp
            .text()
            .await
            .with_context(|| format!("reading the body of {method} {url}"))?;
        Ok(Response {
            status,
            headers,
            url,
            body,
        })
    }

    /// Follows 30x `Location`s (with GET) up to 20 hops. Returns the first non-redirect
    /// response and every URL requested, starting with `resp.url`.
    pub async fn follow(&self, resp: Response) -> anyhow::Result<(Response, Vec<Url>)> {
        let mut visited = vec![resp.url.clone()];
        let mut current = resp;
        while current.is_redirect() {
            if visited.len() > MAX_HOPS {
                bail!("more than {MAX_HOPS} redirects: {visited:?}");
            }
            let next = current
                .location()
                .ok_or_else(|| anyhow!("bad Location from {}", current.url))?;
            visited.push(next.clone());
            current = self.get(next).await?;
        }
        Ok((current, visited))
    }

    /// GET, then [`Browser::follow`].
    pub async fn get_follow(&self, url: impl AsRef<str>) -> anyhow::Result<(Response, Vec<Url>)> {
        let resp = self.get(url).await?;
        self.follow(resp).await
    }

    /// A cookie's value for `host_port` (e.g. `127.0.0.1:8080`).
    pub fn cookie(&self, host_port: &str, name: &str) -> Option<String> {
        let jar = self.jar.lock().expect("jar lock");
        jar.hosts.get(host_port)?.get(name).cloned()
    }

    /// All cookies for `host_port`.
    pub fn cookies(&self, host_port: &str) -> BTreeMap<String, String> {
        let jar = self.jar.lock().expect("jar lock");
        jar.hosts.get(host_port).cloned().unwrap_or_default()
    }

    pub fn set_cookie(&self, host_port: &str, name: &str, value: &str) {
        let mut jar = self.jar.lock().expect("jar lock");
        jar.hosts
            .entry(host_port.to_owned())
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn remove_cookie(&self, host_port: &str, name: &str) {
        let mut jar = self.jar.lock().expect("jar lock");
        if let Some(cookies) = jar.hosts.get_mut(host_port) {
            cookies.remove(name);
        }
    }

    pub fn clear_cookies(&self) {
        self.jar.lock().expect("jar lock").hosts.clear();
    }
}

/// Where a provider interaction starts: a response already received (a redirect chain is
/// followed from it) or a URL to GET.
#[derive(Debug, Clone)]
pub enum Start {
    Response(Response),
    Url(String),
}

impl From<Response> for Start {
    fn from(resp: Response) -> Self {
        Start::Response(resp)
    }
}
impl From<&Response> for Start {
    fn from(resp: &Response) -> Self {
        Start::Response(resp.clone())
    }
}
impl From<&str> for Start {
    fn from(url: &str) -> Self {
        Start::Url(url.to_owned())
    }
}
impl From<String> for Start {
    fn from(url: String) -> Self {
        Start::Url(url)
    }
}
impl From<&String> for Start {
    fn from(url: &String) -> Self {
        Start::Url(url.clone())
    }
}
impl From<Url> for Start {
    fn from(url: Url) -> Self {
        Start::Url(url.into())
    }
}

async fn begin(browser: &Browser, start: Start) -> anyhow::Result<(Response, Vec<Url>)> {
    match start {
        Start::Response(resp) => browser.follow(resp).await,
        Start::Url(url) => browser.get_follow(url).await,
    }
}

/// What a provider page asks for.
enum ProviderPage {
    Login(HtmlForm),
    Consent(HtmlForm),
    Logout(HtmlForm),
    /// oidc-provider's JavaScript auto-submitting form ("Submitting Callback").
    AutoPost(HtmlForm),
    Other,
}

fn classify(resp: &Response) -> ProviderPage {
    let forms = resp.forms();
    let prompt = |form: &HtmlForm, name: &str| form.field("prompt") == Some(name);
    if let Some(form) = forms.iter().find(|f| prompt(f, "login")) {
        return ProviderPage::Login(form.clone());
    }
    if let Some(form) = forms.iter().find(|f| prompt(f, "consent")) {
        return ProviderPage::Consent(form.clone());
    }
    if let Some(form) = forms
        .iter()
        .find(|f| f.id.as_deref() == Some("op.logoutForm"))
    {
        return ProviderPage::Logout(form.clone());
    }
    if resp.body.contains("<title>Submitting Callback</title>")
        && let Some(form) = forms.first()
    {
        return ProviderPage::AutoPost(form.clone());
    }
    ProviderPage::Other
}

fn excerpt(body: &str) -> String {
    let mut text: String = body.chars().take(600).collect();
    if body.len() > text.len() {
        text.push('…');
    }
    text
}

/// Logs `login` in at the provider's dev-interactions pages, with any password.
///
/// `start` is a response (or URL) whose redirect chain reaches the provider's login page,
/// typically Clearance's redirect to the authorization endpoint. Submits the login form, then
/// the consent form if asked, following redirects until a page off the provider's host:port
/// is reached (further redirects, e.g. from Clearance's callback onwards, are followed too).
/// Returns that final response. If the provider already has a session, nothing is submitted.
///
/// Fails if the provider rejects the login (unknown account: HTTP 401 "Sign-in failed"), shows
/// an error page, or asks for the login again.
pub async fn login_at_provider(
    browser: &Browser,
    start: impl Into<Start>,
    login: &str,
) -> anyhow::Result<Response> {
    let (mut resp, visited) = begin(browser, start.into()).await?;
    let provider = visited
        .iter()
        .find(|u| {
            let path = u.path();
            path == "/auth" || path.starts_with("/auth/") || path.starts_with("/interaction/")
        })
        .map(host_port);
    let Some(provider) = provider else {
        if resp
            .forms()
            .iter()
            .any(|f| f.field("prompt") == Some("login"))
        {
            // Started right on the login page.
            return drive(browser, resp.clone(), &resp.host_port(), Some(login)).await;
        }
        bail!(
            "the redirect chain {visited:?} never reached the provider's /auth endpoint; \
             landed on {} ({}): {}",
            resp.url,
            resp.status,
            excerpt(&resp.body)
        );
    };
    if resp.host_port() != provider {
        // Already signed in at the provider: it redirected straight back.
        return Ok(resp);
    }
    resp = drive(browser, resp, &provider, Some(login)).await?;
    Ok(resp)
}

/// Completes an RP-initiated logout: `start` is a response (or URL) whose redirect chain reaches
/// the provider's end_session endpoint. Confirms the "sign out?" form (with `logout=yes`) if
/// shown and follows redirects until a page off the provider's host:port is reached (the
/// `post_logout_redirect_uri`), or the provider's own "Sign-out Success" page. Returns it.
pub async fn logout_at_provider(
    browser: &Browser,
    start: impl Into<Start>,
) -> anyhow::Result<Response> {
    let (resp, visited) = begin(browser, start.into()).await?;
    let provider = visited
        .iter()
        .find(|u| u.path().starts_with("/session/end"))
        .map(host_port);
    let Some(provider) = provider else {
        if matches!(classify(&resp), ProviderPage::Logout(_)) {
            return drive(browser, resp.clone(), &resp.host_port(), None).await;
        }
        bail!(
            "the redirect chain {visited:?} never reached the provider's /session/end; \
             landed on {} ({}): {}",
            resp.url,
            resp.status,
            excerpt(&resp.body)
        );
    };
    if resp.host_port() != provider {
        return Ok(resp);
    }
    drive(browser, resp, &provider, None).await
}

/// Answers provider pages until the browser leaves `provider` (host:port).
async fn drive(
    browser: &Browser,
    mut resp: Response,
    provider: &str,
    login: Option<&str>,
) -> anyhow::Result<Response> {
    let mut logins_submitted = 0;
    for _ in 0..10 {
        if resp.host_port() != provider {
            return Ok(resp);
        }
        let next = match classify(&resp) {
            ProviderPage::Login(mut form) => {
                let Some(login) = login else {
                    bail!("the provider asks for a login at {}", resp.url);
                };
                if logins_submitted > 0 {
                    bail!(
                        "the provider rejected login {login:?} ({} at {}): {}",
                        resp.status,
                        resp.url,
                        excerpt(&resp.body)
                    );
                }
                logins_submitted += 1;
                form.set("login", login).set("password", "any-password");
                browser.submit(&form, None).await?
            }
            ProviderPage::Consent(form) => browser.submit(&form, None).await?,
            ProviderPage::Logout(form) => browser.submit(&form, Some("logout")).await?,
            ProviderPage::AutoPost(form) => browser.submit(&form, None).await?,
            ProviderPage::Other => {
                if resp.url.path().ends_with("/session/end/success") {
                    return Ok(resp);
                }
                bail!(
                    "unexpected page at the provider ({} at {}): {}",
                    resp.status,
                    resp.url,
                    excerpt(&resp.body)
                );
            }
        };
        resp = browser.follow(next).await?.0;
    }
    bail!(
        "still at the provider after 10 pages: {} ({})",
        resp.url,
        resp.status
    )
}
