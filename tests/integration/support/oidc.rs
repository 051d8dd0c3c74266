//! `OidcProvider`: runs the `oidc-provider` fixture (`tests/support/oidc/provider.mjs`) under node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::{Browser, login_at_provider};

/// Client id of the client in [`ProviderConfig::standard`].
pub const CLIENT_ID: &str = "clearance";
/// Client secret of the client in [`ProviderConfig::standard`].
pub const CLIENT_SECRET: &str = "clearance-secret";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root: env `CLEARANCE_REPO_ROOT`, else this crate's manifest dir.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CLEARANCE_REPO_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A registered client (static registration, oidc-provider client metadata).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    /// `web` (oidc-provider's default when absent) or `native`: a native client may use any
    /// port of a loopback `http://127.0.0.1/...` redirect URI (RFC 8252 §7.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// OpenID Connect Back-Channel Logout: where the provider POSTs logout tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Whether logout tokens (and ID tokens) carry the provider session's `sid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_session_required: Option<bool>,
}

impl ClientConfig {
    /// A confidential code-flow client with refresh tokens and `client_secret_basic`.
    pub fn new(
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        post_logout_uri: &str,
    ) -> Self {
        ClientConfig {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            post_logout_redirect_uris: vec![post_logout_uri.to_owned()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: "client_secret_basic".into(),
            application_type: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: None,
        }
    }

    /// A machine client: only the `client_credentials` grant, `client_secret_basic`, no
    /// redirects. With [`ProviderConfig::api_audience`] set, its tokens are JWTs for the API.
    pub fn machine(client_id: &str, client_secret: &str) -> Self {
        ClientConfig {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials".into()],
            response_types: Vec::new(),
            token_endpoint_auth_method: "client_secret_basic".into(),
            application_type: None,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: None,
        }
    }

    /// A confidential native code-flow client (think: a command-line tool) whose redirect URI
    /// is `http://127.0.0.1/callback` on any port.
    pub fn native(client_id: &str, client_secret: &str) -> Self {
        ClientConfig {
            application_type: Some("native".into()),
            ..ClientConfig::new(
                client_id,
                client_secret,
                "http://127.0.0.1/callback",
                "http://127.0.0.1/signed-out",
            )
        }
    }
}

/// An end-user account. Claims by scope: openid → `sub`; email → `email`, `email_verified`;
/// profile → `name`, `employee_type`, `manager`; groups → `groups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub groups: Vec<String>,
    /// `employee`, `contractor` or `temp`.
    pub employee_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// Claims a provider adds on its own (Entra ID's `tid`, Google's `hd`), in every token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_claims: BTreeMap<String, String>,
}

impl Account {
    pub fn new(
        sub: &str,
        email: &str,
        name: &str,
        employee_type: &str,
        groups: &[&str],
        manager: Option<&str>,
    ) -> Self {
        Account {
            sub: sub.to_owned(),
            email: email.to_owned(),
            email_verified: true,
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            employee_type: employee_type.to_owned(),
            manager: manager.map(str::to_owned),
            extra_claims: BTreeMap::new(),
        }
    }
}

/// What the fixture is started with (serialized as its CONFIG file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProviderConfig {
    pub clients: Vec<ClientConfig>,
    /// Keyed by login name (what is typed into the login form).
    pub accounts: BTreeMap<String, Account>,
    /// The signing key's kid is `"k-" + keys_seed`.
    pub keys_seed: String,
    /// Seconds.
    pub access_token_ttl: u64,
    /// Seconds.
    pub id_token_ttl: u64,
    /// A resource indicator (RFC 8707) the provider issues JWT access tokens for: a token
    /// request with `resource=<this>` gets an RS256 JWT (`typ` `at+jwt`) with this `aud`,
    /// `client_id`, the API scopes and the account's claims; the `client_credentials` grant
    /// defaults to it. `None`: only opaque access tokens (for userinfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_audience: Option<String>,
    /// Which of an account's claims JWT access tokens carry, as scope names (`"email"`: the
    /// address only). `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token_scope: Option<String>,
}

impl ProviderConfig {
    /// The API audience [`ProviderConfig::with_api`] configures.
    pub const API_AUDIENCE: &str = "https://api.clearance.test";
    /// The machine (`client_credentials`) client [`ProviderConfig::with_api`] adds.
    pub const MACHINE_CLIENT_ID: &str = "clearance-robot";
    pub const MACHINE_CLIENT_SECRET: &str = "clearance-robot-secret";
    /// The native code-flow client [`ProviderConfig::with_api`] adds; people get API tokens
    /// through it ([`OidcProvider::user_access_token`]).
    pub const API_CLIENT_ID: &str = "clearance-cli";
    pub const API_CLIENT_SECRET: &str = "clearance-cli-secret";

    /// Client `clearance` / `clearance-secret` and the four standard accounts (login = email):
    /// alice (employee; staff, engineering), carl (contractor; contractors),
    /// erin (employee; staff), mona (employee; staff, managers; no manager).
    /// Token TTLs are 60 s.
    pub fn standard(redirect_uri: &str, post_logout_uri: &str) -> Self {
        let mona = "mona@example.com";
        let accounts = [
            Account::new(
                "sub-alice",
                "alice@example.com",
                "Alice Admitted",
                "employee",
                &["staff", "engineering"],
                Some(mona),
            ),
            Account::new(
                "sub-carl",
                "carl@example.com",
                "Carl Contractor",
                "contractor",
                &["contractors"],
                Some(mona),
            ),
            Account::new(
                "sub-erin",
                "erin@example.com",
                "Erin Expired",
                "employee",
                &["staff"],
                Some(mona),
            ),
            Account::new(
                "sub-mona",
                mona,
                "Mona Manager",
                "employee",
                &["staff", "managers"],
                None,
            ),
        ];
        ProviderConfig {
            clients: vec![ClientConfig::new(
                CLIENT_ID,
                CLIENT_SECRET,
                redirect_uri,
                post_logout_uri,
            )],
            accounts: accounts
                .into_iter()
                .map(|account| (account.email.clone(), account))
                .collect(),
            keys_seed: "initial".into(),
            access_token_ttl: 60,
            id_token_ttl: 60,
            api_audience: None,
            api_token_scope: None,
        }
    }

    /// Turns on JWT access tokens for [`ProviderConfig::API_AUDIENCE`] and adds the machine
    /// client ([`ProviderConfig::MACHINE_CLIENT_ID`]) and the native client
    /// ([`ProviderConfig::API_CLIENT_ID`]) that [`OidcProvider::user_access_token`] uses.
    pub fn with_api(self) -> Self {
        self.with_api_audience(Self::API_AUDIENCE)
            .with_client(ClientConfig::machine(
                Self::MACHINE_CLIENT_ID,
                Self::MACHINE_CLIENT_SECRET,
            ))
            .with_client(ClientConfig::native(
                Self::API_CLIENT_ID,
                Self::API_CLIENT_SECRET,
            ))
    }

    /// Sets the API audience (an absolute URI) JWT access tokens are issued for.
    pub fn with_api_audience(mut self, audience: &str) -> Self {
        self.api_audience = Some(audience.to_owned());
        self
    }

    /// Gives the first client (Clearance) a back-channel logout URI next to its callback
    /// (`.../oauth2/backchannel_logout`), with `sid` required: signing out at the provider then
    /// POSTs a logout token to the gate.
    pub fn with_backchannel_logout(mut self) -> Self {
        if let Some(client) = self.clients.first_mut() {
            client.backchannel_logout_uri = client
                .redirect_uris
                .first()
                .map(|uri| uri.replace("/oauth2/callback", "/oauth2/backchannel_logout"));
            client.backchannel_logout_session_required = Some(true);
        }
        self
    }

    /// Adds or replaces (by `client_id`) a client.
    pub fn with_client(mut self, client: ClientConfig) -> Self {
        self.clients.retain(|c| c.client_id != client.client_id);
        self.clients.push(client);
        self
    }

    /// Sets both token TTLs (seconds).
    pub fn with_ttls(mut self, access_token_ttl: u64, id_token_ttl: u64) -> Self {
        self.access_token_ttl = access_token_ttl;
        self.id_token_ttl = id_token_ttl;
        self
    }

    /// Adds or replaces an account under `login`.
    pub fn with_account(mut self, login: &str, account: Account) -> Self {
        self.accounts.insert(login.to_owned(), account);
        self
    }

    /// The kid of the signing key this configuration produces.
    pub fn kid(&self) -> String {
        format!("k-{}", self.keys_seed)
    }
}

/// The `oidc-provider` fixture running under node on 127.0.0.1; killed on drop.
///
/// State (sessions, grants, tokens) lives in the provider process's memory, so
/// [`OidcProvider::rotate_keys`] (a restart) also forgets all of it.
pub struct OidcProvider {
    port: u16,
    config: ProviderConfig,
    rotations: u32,
    child: Option<Child>,
    dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
    /// Where the running process wrote its private signing keys (env `KEYS_OUT`).
    keys_path: PathBuf,
    /// Keys the next start reuses (env `KEYS_IN`), for a restart that is not a rotation.
    keys_in: Option<PathBuf>,
}

impl OidcProvider {
    /// Starts the provider on a free port and waits for it to be ready. Panics on failure.
    pub async fn start(config: ProviderConfig) -> Self {
        match Self::try_start(config).await {
            Ok(provider) => provider,
            Err(err) => panic!("starting the OpenID provider fixture failed: {err:#}"),
        }
    }

    /// Like [`OidcProvider::start`], but returns the error.
    pub async fn try_start(config: ProviderConfig) -> anyhow::Result<Self> {
        // A port found free can be taken (by another process's port 0) before node binds it,
        // and node can fail to start on a loaded machine: try a few times, each on a new port,
        // saying why (a missing dependency fails every time, with its own message).
        let mut attempts = 1;
        loop {
            match Self::try_start_on(super::free_port(), config.clone()).await {
                Err(err) if attempts < 4 => {
                    eprintln!("[oidc-provider] start attempt {attempts} failed, retrying: {err:#}");
                    attempts += 1;
                }
                started => return started,
            }
        }
    }

    /// Starts the provider on a given port.
    pub async fn try_start_on(port: u16, config: ProviderConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("clearance-oidc-")
            .tempdir()
            .context("creating a temp dir for the provider config")?;
        let keys_path = dir.path().join("keys-0.json");
        let mut provider = OidcProvider {
            port,
            config,
            rotations: 0,
            child: None,
            dir,
            logs: Arc::default(),
            keys_path,
            keys_in: None,
        };
        provider.spawn_and_wait().await?;
        Ok(provider)
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the key of its cookies in a [`super::Browser`].
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer())
    }

    pub fn authorization_endpoint(&self) -> String {
        format!("{}/auth", self.issuer())
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer())
    }

    pub fn userinfo_endpoint(&self) -> String {
        format!("{}/me", self.issuer())
    }

    pub fn end_session_endpoint(&self) -> String {
        format!("{}/session/end", self.issuer())
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The kid of the current signing key.
    pub fn kid(&self) -> String {
        self.config.kid()
    }

    /// Lines the provider wrote to stderr so far (all restarts).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs lock").clone()
    }

    /// The provider's current signing keys, PRIVATE parts included (`{"keys": [jwk]}`), for
    /// forging tokens that the real key signs. Panics if they cannot be read.
    pub fn private_jwks(&self) -> Value {
        read_jwks(&self.keys_path).unwrap_or_else(|err| panic!("{err:#}"))
    }

    /// A `client_credentials` access token (`client_secret_basic`). With an API audience
    /// configured it is a JWT for that audience. Panics unless the provider issues one.
    pub async fn client_credentials_token(&self, client_id: &str, client_secret: &str) -> String {
        let (status, body) = self
            .token_request(
                client_id,
                client_secret,
                &[("grant_type", "client_credentials")],
            )
            .await
            .unwrap_or_else(|err| panic!("client_credentials token request: {err:#}"));
        match body["access_token"].as_str() {
            Some(token) if status == 200 => token.to_owned(),
            _ => panic!("client_credentials for {client_id} refused ({status}): {body}"),
        }
    }

    /// A person's JWT access token for the API audience: signs `login` in with a fresh
    /// browser through the native API client and redeems the code with `resource` = the API
    /// audience. Needs [`ProviderConfig::with_api`]. Panics on failure.
    pub async fn user_access_token(&self, login: &str) -> String {
        let Some(audience) = self.config.api_audience.clone() else {
            panic!("user_access_token needs ProviderConfig::with_api (no api_audience)");
        };
        let tokens = self
            .try_user_tokens(&Browser::new(), login, Some(&audience))
            .await
            .unwrap_or_else(|err| panic!("user access token for {login}: {err:#}"));
        match tokens["access_token"].as_str() {
            Some(token) => token.to_owned(),
            None => panic!("no access_token for {login}: {tokens}"),
        }
    }

    /// Runs the authorization code flow for `login` in `browser` through the native API client
    /// ([`ProviderConfig::API_CLIENT_ID`], scopes `openid email profile groups api`), naming
    /// `resource` in the authorization and the token request if given. Returns the token
    /// endpoint's JSON (`access_token`, `id_token`, `refresh_token`, ...). The redirect lands on
    /// a throwaway loopback listener.
    pub async fn try_user_tokens(
        &self,
        browser: &Browser,
        login: &str,
        resource: Option<&str>,
    ) -> anyhow::Result<Value> {
        let client_id = ProviderConfig::API_CLIENT_ID;
        if !self.config.clients.iter().any(|c| c.client_id == client_id) {
            bail!("the provider has no client {client_id}: use ProviderConfig::with_api");
        }
        let catcher = RedirectCatcher::start().await?;
        let redirect_uri = format!("http://127.0.0.1:{}/callback", catcher.port);
        let state = format!("api-{}", rand::random::<u64>());
        let mut auth = url::Url::parse(&self.authorization_endpoint())?;
        auth.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email profile groups api")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("state", &state)
            .append_pair("nonce", &format!("nonce-{state}"));
        if let Some(resource) = resource {
            auth.query_pairs_mut().append_pair("resource", resource);
        }
        let landed = login_at_provider(browser, auth, login).await?;
        let param = |name: &str| {
            landed
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if landed.url.port() != Some(catcher.port) {
            bail!(
                "the sign-in did not return to {redirect_uri}: {}",
                landed.url
            );
        }
        if param("state").as_deref() != Some(state.as_str()) {
            bail!("state mismatch on the redirect: {}", landed.url);
        }
        let code = param("code").ok_or_else(|| anyhow!("no code on {}", landed.url))?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let (status, body) = self
            .token_request(client_id, ProviderConfig::API_CLIENT_SECRET, &form)
            .await?;
        if status != 200 {
            bail!("the token endpoint refused the code ({status}): {body}");
        }
        Ok(body)
    }

    /// POSTs a form to the token endpoint with `client_secret_basic`; returns (status, JSON).
    pub async fn token_request(
        &self,
        client_id: &str,
        client_secret: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let resp = reqwest::Client::new()
            .post(self.token_endpoint())
            .basic_auth(client_id, Some(client_secret))
            .form(form)
            .send()
            .await
            .context("POST to the token endpoint")?;
        let status = resp.status().as_u16();
        let body = resp
            .json()
            .await
            .context("the token endpoint's answer is not JSON")?;
        Ok((status, body))
    }

    /// Restarts the provider on the same port with a new `keys_seed`: a new signing key with a
    /// new kid, the old key gone. Returns the new kid. Sessions, grants and tokens are lost.
    pub async fn rotate_keys(&mut self) -> String {
        self.rotations += 1;
        let seed = format!("{}-r{}", self.config.keys_seed, self.rotations);
        self.restart_with(ProviderConfig {
            keys_seed: seed,
            ..self.config.clone()
        })
        .await;
        self.kid()
    }

    /// Restarts the provider on the same port with another configuration. Panics on failure.
    pub async fn restart_with(&mut self, config: ProviderConfig) {
        self.stop().await;
        self.config = config;
        if let Err(err) = self.spawn_and_wait().await {
            panic!(
                "restarting the OpenID provider on port {} failed: {err:#}",
                self.port
            );
        }
    }

    /// Restarts the provider on the same port with the same configuration and signing key (an
    /// outage, not a rotation). Sessions, grants and tokens are lost. Panics on failure.
    pub async fn restart_same_keys(&mut self) {
        let kept = self.dir.path().join("keys-kept.json");
        if let Err(err) = std::fs::copy(&self.keys_path, &kept) {
            panic!("keeping the provider's keys failed: {err}");
        }
        self.stop().await;
        self.keys_in = Some(kept);
        self.rotations += 1;
        let started = self.spawn_and_wait().await;
        self.keys_in = None;
        if let Err(err) = started {
            panic!(
                "restarting the OpenID provider on port {} failed: {err:#}",
                self.port
            );
        }
    }

    /// Kills the provider and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let fixture = repo_root().join("tests/support/oidc");
        let script = fixture.join("provider.mjs");
        if !fixture
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            bail!(
                "{} has no node_modules/oidc-provider: run scripts/install-test-deps.sh \
                 (set CLEARANCE_REPO_ROOT if the repository is elsewhere)",
                fixture.display()
            );
        }
        let config_path = self
            .dir
            .path()
            .join(format!("config-{}.json", self.rotations));
        std::fs::write(&config_path, serde_json::to_vec_pretty(&self.config)?)
            .context("writing the provider config")?;
        // A new file per start: a key file left by the previous process is never read.
        self.keys_path = self
            .dir
            .path()
            .join(format!("keys-{}.json", self.rotations));
        let _ = std::fs::remove_file(&self.keys_path);

        let node = std::env::var_os("CLEARANCE_NODE").unwrap_or_else(|| "node".into());
        let mut child = Command::new(&node)
            .arg(&script)
            .current_dir(&fixture)
            .env("PORT", self.port.to_string())
            .env("ISSUER", self.issuer())
            .env("CONFIG", &config_path)
            .env("KEYS_OUT", &self.keys_path)
            .envs(self.keys_in.iter().map(|k| ("KEYS_IN", k)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "spawning {} {} (is node installed? run scripts/install-test-deps.sh)",
                    node.to_string_lossy(),
                    script.display()
                )
            })?;

        // Keep both pipes drained for the life of the process; forward stderr to the test log.
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::clone(&self.logs);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // oidc-provider's fixed development-mode warnings are kept out of test output.
                if !line.starts_with("oidc-provider WARNING") {
                    eprintln!("[oidc-provider] {line}");
                }
                logs.lock().expect("logs lock").push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut ready_tx = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(issuer) = line.strip_prefix("READY ")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(issuer.to_owned());
                }
            }
        });
        self.child = Some(child);

        match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(issuer)) if issuer == self.issuer() => Ok(()),
            Ok(Ok(issuer)) => bail!(
                "provider announced issuer {issuer}, expected {}",
                self.issuer()
            ),
            Ok(Err(_)) => {
                // stdout closed without READY: the process died.
                let status = match self.child.as_mut() {
                    Some(child) => child.wait().await.ok(),
                    None => None,
                };
                self.child = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
                bail!(
                    "the OpenID provider exited ({}) before READY; stderr:\n{}\n\
                     (missing dependencies? run scripts/install-test-deps.sh)",
                    status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string()),
                    self.logs().join("\n")
                )
            }
            Err(_) => {
                self.stop().await;
                bail!(
                    "the OpenID provider did not print READY within {READY_TIMEOUT:?}; stderr:\n{}\n\
                     (missing dependencies? run scripts/install-test-deps.sh)",
                    self.logs().join("\n")
                )
            }
        }
    }
}

fn read_jwks(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the provider's keys from {}", path.display()))?;
    let jwks: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if !jwks["keys"].is_array() {
        bail!("{} is not a JWK set", path.display());
    }
    Ok(jwks)
}

/// A loopback HTTP listener that answers every request with `200 signed in`: the landing
/// page of a redirect URI whose only purpose is to carry the authorization code in its URL.
/// Stops accepting on drop.
struct RedirectCatcher {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl RedirectCatcher {
    async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding the redirect catcher")?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                              content-length: 9\r\nconnection: close\r\n\r\nsigned in",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(RedirectCatcher { port, task })
    }
}

impl Drop for RedirectCatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
