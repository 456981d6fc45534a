//! Single sign-on with OpenID Connect: the provider's settings (the `[oidc]` section of the config
//! file), its discovery document and keys (cached, fetched again when a token names a key we do
//! not have), and the rules that turn the provider's groups into a role.
//!
//! The protocol work (discovery, PKCE, the code exchange, ID token signature and claims) is the
//! `openidconnect` crate's; what is ours is the HTTP client it uses (bounded, no redirects), the
//! state kept between the two legs (in the database, so any replica can finish a sign-in), and
//! the mapping onto Lookout's users. The pages are in [`flow`].

pub mod flow;
pub mod settings;

use std::time::{Duration, Instant};

use lookout_core::role::Role;
use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, ProviderMetadataWithLogout, RedirectUrl};
use tokio::sync::Mutex;

/// What one answer from the provider may weigh (discovery, keys, token): real ones are a few KB.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// How long one call to the provider may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The least time between two fetches of the discovery document, even when one is asked for
/// (the settings page's Test, a token naming an unknown key): a burst of them is one fetch.
const MIN_REFRESH: Duration = Duration::from_secs(5);

/// How long a discovery document (and its keys) is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// The `[oidc]` section, resolved by the binary (flags and `LOOKOUT_OIDC_*` over the file).
#[derive(Debug, Clone, Default)]
pub struct SsoConfig {
    /// The provider's issuer URL (discovery is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (never logged, never shown).
    pub client_secret: String,
    /// The claim that lists the user's groups (`groups` by default).
    pub groups_claim: String,
    /// Scopes asked for besides `openid` (default `email`, `profile`); a provider that puts
    /// groups behind a scope needs it here (`groups`).
    pub scopes: Vec<String>,
    /// When not empty, only emails in these domains may sign in.
    pub allowed_domains: Vec<String>,
    /// Groups whose members are admins (checked first).
    pub admin_groups: Vec<String>,
    /// Groups whose members are members (checked second); everyone else is a viewer.
    pub member_groups: Vec<String>,
    /// `[oidc.teams]`: `(team slug, groups)`. Sign-ins add the user to each listed team one of
    /// their groups names and remove them from the other listed teams.
    pub team_groups: Vec<(String, Vec<String>)>,
    /// Password sign-in is refused, except for [`SsoConfig::break_glass`].
    pub sso_only: bool,
    /// The local account that keeps password sign-in in SSO-only mode (an admin), and whose role
    /// sign-ins never change.
    pub break_glass: Option<String>,
}

impl SsoConfig {
    /// Why these settings cannot work, naming the setting.
    pub fn problem(&self) -> Option<String> {
        if self.client_id.trim().is_empty() {
            return Some("oidc.client_id is empty".into());
        }
        if self.client_secret.is_empty() {
            return Some("oidc.client_secret is empty".into());
        }
        let url = match url::Url::parse(&self.issuer) {
            Ok(u) => u,
            Err(e) => return Some(format!("oidc.issuer is not a URL: {e}")),
        };
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => None,
            "http" if loopback => None,
            _ => Some(format!(
                "oidc.issuer must be https (http only on loopback addresses): {}",
                self.issuer
            )),
        }
    }

    /// The listed teams (by slug) the groups put a user in, and the listed ones they do not.
    pub fn teams_for(&self, groups: &[String]) -> (Vec<String>, Vec<String>) {
        let (yes, no): (Vec<_>, Vec<_>) = self
            .team_groups
            .iter()
            .partition(|(_, gs)| groups.iter().any(|g| gs.contains(g)));
        let slugs = |v: Vec<&(String, Vec<String>)>| v.into_iter().map(|t| t.0.clone()).collect();
        (slugs(yes), slugs(no))
    }

    /// The role the groups give: admin, then member; viewer when none matches.
    pub fn role_for(&self, groups: &[String]) -> Role {
        let any = |list: &[String]| groups.iter().any(|g| list.contains(g));
        if any(&self.admin_groups) {
            Role::Admin
        } else if any(&self.member_groups) {
            Role::Member
        } else {
            Role::Viewer
        }
    }

    /// Whether an email may sign in under `allowed_domains`.
    pub fn domain_allowed(&self, email: &str) -> bool {
        if self.allowed_domains.is_empty() {
            return true;
        }
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.allowed_domains
            .iter()
            .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain))
    }

    /// Whether password sign-in is allowed for this email.
    pub fn password_allowed(&self, email: &str) -> bool {
        !self.sso_only
            || self
                .break_glass
                .as_deref()
                .is_some_and(|b| b.eq_ignore_ascii_case(email.trim()))
    }
}

/// Gives a user whose SSO sign-in just completed the role and teams its groups gave (see
/// `lookout_store::sso::apply_grants`: one transaction with an audit entry, actor `sso`, per
/// change), and logs what changed. `issued_at` is when that sign-in began; false (and nothing
/// changed) when a sign-in that began later has applied its grants already.
pub(crate) async fn apply_grants(
    state: &crate::state::AppState,
    user_id: i64,
    grants: &lookout_store::sso::Grants,
    issued_at: i64,
) -> Result<bool, lookout_store::StoreError> {
    // The settings may have been removed during the second step: the grants were made under
    // them, and are still what the provider said.
    let config = state.sso().map(|s| s.config());
    let issuer = config.map_or("sso", |c| c.issuer.as_str());
    let keep = config.and_then(|c| c.break_glass.as_deref());
    let org = lookout_store::tenancy::default_org(state.store()).await?;
    let applied = lookout_store::sso::apply_grants(
        state.store(),
        org.id,
        user_id,
        issuer,
        keep,
        grants,
        issued_at,
    )
    .await?;
    if applied.stale {
        tracing::warn!(
            user = user_id,
            "SSO sign-in refused: a later sign-in has applied its role and teams already."
        );
        return Ok(false);
    }
    if applied.role_was.is_some() || !applied.joined.is_empty() || !applied.left.is_empty() {
        tracing::info!(
            user = user_id,
            role_was = ?applied.role_was,
            role = grants.role.as_str(),
            joined = ?applied.joined,
            left = ?applied.left,
            "Role and teams from groups."
        );
    }
    if !applied.missing.is_empty() {
        tracing::warn!(teams = ?applied.missing, "oidc.teams names teams that do not exist; create them on the Teams page.");
    }
    Ok(true)
}

/// A client made from discovery: authorization endpoint set, token and user-info endpoints as
/// discovered.
pub(crate) type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Single sign-on as the server runs it: the settings, an HTTP client for the provider, and the
/// discovery document last fetched.
pub struct Sso {
    config: SsoConfig,
    redirect_uri: String,
    http: ProviderHttp,
    discovered: Mutex<Option<(Instant, ProviderMetadataWithLogout)>>,
}

/// Why talking to the provider failed (shown to the user as "the provider could not be reached").
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Connecting, sending or reading failed.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The answer was larger than [`MAX_ANSWER_BYTES`].
    #[error("the provider's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    /// The answer could not be turned into an HTTP response.
    #[error("{0}")]
    Build(String),
}

impl Sso {
    /// The server's SSO for `public_url` (the redirect URI is `{public_url}/auth/oidc/callback`).
    pub fn new(config: SsoConfig, public_url: &str) -> Result<Sso, String> {
        if let Some(p) = config.problem() {
            return Err(p);
        }
        // The issuer is the operator's (the config file), not a user's, so it is not held to
        // the outbound policy, which would refuse the loopback providers of local setups; it
        // gets the same limits as every outbound call: timeouts, no redirects, bounded answers.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Sso {
            config,
            redirect_uri: format!("{}/auth/oidc/callback", public_url.trim_end_matches('/')),
            http: ProviderHttp(http),
            discovered: Mutex::new(None),
        })
    }

    /// The settings.
    pub fn config(&self) -> &SsoConfig {
        &self.config
    }

    /// The provider's discovery document and keys: the cached one unless `fresh` or stale. A
    /// forced refresh happens at most once every [`MIN_REFRESH`] (the cached one is answered
    /// in between), and the lock is not held across the fetch: a slow provider does not hold
    /// up sign-ins that can use the cache, and they swap in whichever answer lands.
    pub async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, String> {
        if let Some((at, meta)) = self.discovered.lock().await.as_ref() {
            let age = at.elapsed();
            if age < MIN_REFRESH || (!fresh && age < DISCOVERY_TTL) {
                return Ok(meta.clone());
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        let meta = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| describe(&e))?;
        *self.discovered.lock().await = Some((Instant::now(), meta.clone()));
        Ok(meta)
    }

    /// A client for this provider's metadata.
    fn client(&self, meta: ProviderMetadataWithLogout) -> Result<Client, String> {
        let redirect = RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }
}

/// The HTTP client `openidconnect` calls the provider with: each answer read up to
/// [`MAX_ANSWER_BYTES`]. A type rather than a closure, so that the sign-in handlers' futures stay
/// `Send`.
pub(crate) struct ProviderHttp(reqwest::Client);

impl ProviderHttp {
    /// Sends one request, reading at most [`MAX_ANSWER_BYTES`].
    async fn send(
        &self,
        req: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, ProviderError> {
        let (parts, body) = req.into_parts();
        let mut res = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = res.status();
        let headers = res.headers().clone();
        let mut buf = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            if buf.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ProviderError::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        let mut out = openidconnect::http::Response::builder()
            .status(status)
            .body(buf)
            .map_err(|e| ProviderError::Build(e.to_string()))?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, ProviderError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// The signature algorithms accepted on ID tokens: asymmetric ones only. `none` and the HMAC
/// family are refused whatever the provider advertises, so a token "signed" with the provider's
/// public key as an HMAC secret (algorithm confusion) or with the client secret never passes.
pub fn accepted_algorithms() -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm::*;
    vec![
        RsaSsaPkcs1V15Sha256,
        RsaSsaPkcs1V15Sha384,
        RsaSsaPkcs1V15Sha512,
        RsaSsaPssSha256,
        RsaSsaPssSha384,
        RsaSsaPssSha512,
        EcdsaP256Sha256,
        EcdsaP384Sha384,
        EcdsaP521Sha512,
        EdDsa,
    ]
}

/// An error and its causes on one line (the crate's errors wrap the useful part).
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The groups claim of a verified ID token, read from its payload (the crate's claim types do
/// not carry custom claims). Only called after the signature was checked over that payload.
pub fn groups_of(id_token: &str, claim: &str) -> Vec<String> {
    groups_claimed(id_token, claim).unwrap_or_default()
}

/// [`groups_of`], but `None` when the token has no such claim at all (as opposed to an empty
/// list): a provider that leaves the claim out says nothing about team membership.
pub fn groups_claimed(id_token: &str, claim: &str) -> Option<Vec<String>> {
    use base64::Engine as _;
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value = serde_json::from_slice::<serde_json::Value>(&bytes).ok()?;
    match value.get(claim)? {
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .take(1000)
                .collect(),
        ),
        serde_json::Value::String(one) => Some(vec![one.clone()]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SsoConfig {
        SsoConfig {
            issuer: "https://id.example.com/realms/ops".into(),
            client_id: "lookout".into(),
            client_secret: "s3cret".into(),
            groups_claim: "groups".into(),
            scopes: vec!["email".into()],
            allowed_domains: vec!["example.com".into()],
            admin_groups: vec!["sre-leads".into()],
            member_groups: vec!["engineers".into()],
            team_groups: vec![
                ("payments".into(), vec!["grp-payments".into()]),
                (
                    "search".into(),
                    vec!["grp-search".into(), "grp-index".into()],
                ),
            ],
            sso_only: true,
            break_glass: Some("root@example.com".into()),
        }
    }

    #[test]
    fn issuers_must_be_https_except_on_loopback() {
        let mut c = config();
        assert_eq!(c.problem(), None);
        c.issuer = "http://id.example.com".into();
        assert!(c.problem().unwrap().contains("must be https"));
        for ok in [
            "http://127.0.0.1:9000",
            "http://[::1]:9000/x",
            "http://localhost:1",
        ] {
            c.issuer = ok.into();
            assert_eq!(c.problem(), None, "{ok}");
        }
        c.issuer = "not a url".into();
        assert!(c.problem().unwrap().contains("oidc.issuer"));
        c = config();
        c.client_secret.clear();
        assert!(c.problem().unwrap().contains("client_secret"));
    }

    #[test]
    fn groups_map_to_the_highest_listed_role() {
        let c = config();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.role_for(&g(&["engineers", "sre-leads"])), Role::Admin);
        assert_eq!(c.role_for(&g(&["engineers"])), Role::Member);
        assert_eq!(c.role_for(&g(&["sales"])), Role::Viewer);
        assert_eq!(c.role_for(&[]), Role::Viewer);
    }

    #[test]
    fn groups_name_the_listed_teams_to_join_and_to_leave() {
        let c = config();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (join, leave) = c.teams_for(&g(&["engineers", "grp-index"]));
        assert_eq!(
            (join, leave),
            (vec!["search".into()], vec!["payments".into()])
        );
        let (join, leave) = c.teams_for(&[]);
        assert!(join.is_empty());
        assert_eq!(leave, vec!["payments".to_string(), "search".to_string()]);
    }

    #[test]
    fn domains_and_password_sign_in() {
        let c = config();
        assert!(c.domain_allowed("ada@example.com"));
        assert!(c.domain_allowed("ada@EXAMPLE.com"));
        assert!(!c.domain_allowed("ada@example.com.evil.test"));
        assert!(!c.domain_allowed("no-at-sign"));
        assert!(c.password_allowed("Root@example.com"));
        assert!(!c.password_allowed("ada@example.com"));
        let open = SsoConfig {
            sso_only: false,
            ..config()
        };
        assert!(open.password_allowed("ada@example.com"));
    }

    type Pages = Vec<(&'static str, Vec<u8>)>;

    /// A provider that answers each path with a fixed body (and 404 elsewhere); `pages` is given
    /// the provider's own URL.
    async fn provider(pages: impl FnOnce(&str) -> Pages) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let pages = std::sync::Arc::new(pages(&url));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let pages = pages.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&req).to_string();
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = match pages.iter().find(|(p, _)| *p == path) {
                        Some((_, b)) => ("200 OK", b.clone()),
                        None => ("404 Not Found", Vec::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                });
            }
        });
        url
    }

    fn discovery(issuer: &str, jwks: &str) -> Vec<u8> {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{jwks}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string()
        .into_bytes()
    }

    async fn discover(pages: impl FnOnce(&str) -> Pages) -> String {
        let url = provider(pages).await;
        let sso = Sso::new(
            SsoConfig {
                issuer: url,
                ..config()
            },
            "http://127.0.0.1:8800",
        )
        .unwrap();
        sso.metadata(false).await.unwrap_err()
    }

    #[tokio::test]
    async fn bad_discovery_documents_and_keys_are_refused() {
        const WELL_KNOWN: &str = "/.well-known/openid-configuration";
        let err = discover(|_| vec![(WELL_KNOWN, b"{not json".to_vec())]).await;
        assert!(err.contains("key must be a string"), "{err}");
        let err = discover(|_| vec![(WELL_KNOWN, vec![b' '; MAX_ANSWER_BYTES + 1])]).await;
        assert!(err.contains("larger than"), "{err}");
        // A document that names another issuer (a provider impersonating another).
        let err = discover(|_| {
            vec![(
                WELL_KNOWN,
                discovery("https://evil.example", "https://evil.example"),
            )]
        })
        .await;
        assert!(err.contains("evil.example"), "{err}");
        // A good document, malformed keys.
        let err = discover(|url| {
            vec![
                (WELL_KNOWN, discovery(url, url)),
                ("/jwks", br#"{"keys": 7}"#.to_vec()),
            ]
        })
        .await;
        assert!(err.contains("keys"), "{err}");
    }

    #[test]
    fn groups_are_read_from_the_payload() {
        use base64::Engine as _;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"sub":"1","groups":["a","b"],"role":"x"}"#)
        );
        assert_eq!(groups_of(&token, "groups"), vec!["a", "b"]);
        assert_eq!(groups_of(&token, "role"), vec!["x"]);
        assert!(groups_of(&token, "missing").is_empty());
        assert!(groups_of("garbage", "groups").is_empty());
    }
}
