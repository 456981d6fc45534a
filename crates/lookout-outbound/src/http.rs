//! HTTP clients that honour the policy where it cannot be dodged: at connect time and on every
//! redirect hop.
//!
//! Checking a URL before sending is not enough: a name may resolve to an allowed address when
//! checked and a denied one when connected (DNS rebinding), and an allowed server may redirect
//! to a denied one. So names are resolved by [`PolicyResolver`], which hands the connector only
//! allowed addresses, and every redirect target is judged before it is followed. reqwest does
//! not resolve IP literals, so those are judged by [`check_url`] (first hop) and by the
//! redirect policy (later hops).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use reqwest::{Method, RequestBuilder, Url};

use crate::NetPolicy;

/// Redirects followed before a request fails.
pub const MAX_REDIRECTS: usize = 10;

/// Resolves names and drops the addresses the policy refuses; a name left with none fails to
/// resolve, with the policy's reason.
#[derive(Debug, Clone)]
pub struct PolicyResolver(pub Arc<NetPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let addrs = crate::resolve(&policy, name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The IP address a URL names literally, if it does.
pub fn ip_literal(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Judges a URL's literal IP host (names are judged when resolved).
pub fn check_url(policy: &NetPolicy, url: &Url) -> Result<(), String> {
    match ip_literal(url).and_then(|ip| policy.refuses(ip)) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// Follows up to [`MAX_REDIRECTS`] redirects, refusing any whose target the policy denies.
pub fn redirect_policy(policy: Arc<NetPolicy>) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match check_url(&policy, attempt.url()) {
            Err(why) => attempt.error(format!("redirect refused: {why}")),
            Ok(()) => attempt.follow(),
        }
    })
}

/// A reqwest builder that resolves through the policy and, when `follow_redirects`, judges
/// every hop. No proxy is used: through a proxy the policy would judge the proxy, not the
/// destination. Callers add timeouts, TLS and pool settings.
pub fn client_builder(policy: Arc<NetPolicy>, follow_redirects: bool) -> reqwest::ClientBuilder {
    let redirects = if follow_redirects {
        redirect_policy(policy.clone())
    } else {
        redirect::Policy::none()
    };
    reqwest::Client::builder()
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .redirect(redirects)
        .no_proxy()
}

/// The HTTP client for user-supplied destinations (webhooks, chat, ntfy, PagerDuty, report
/// deliveries): the only way to start a request is through [`HttpClient::request`], which
/// judges the URL, and the client underneath judges every connection and redirect.
#[derive(Debug, Clone)]
pub struct HttpClient {
    policy: Arc<NetPolicy>,
    client: reqwest::Client,
}

impl HttpClient {
    /// A client with a per-request `timeout` and `user_agent`.
    pub fn new(policy: Arc<NetPolicy>, timeout: Duration, user_agent: &str) -> HttpClient {
        let client = client_builder(policy.clone(), true)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(user_agent)
            .build()
            // Building fails only if the TLS backend cannot start; then nothing can be sent,
            // and a default client fails each request with its own error.
            .unwrap_or_default();
        HttpClient { policy, client }
    }

    /// The policy this client applies.
    pub fn policy(&self) -> &Arc<NetPolicy> {
        &self.policy
    }

    /// A request to `url`, or why it may not be made (not a URL, or a denied address).
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, String> {
        let url = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{}: only http and https URLs", url.scheme()));
        }
        check_url(&self.policy, &url)?;
        Ok(self.client.request(method, url))
    }

    /// A POST to `url` (see [`HttpClient::request`]).
    pub fn post(&self, url: &str) -> Result<RequestBuilder, String> {
        self.request(Method::POST, url)
    }
}

/// A request's error with its causes, where reqwest keeps the useful part ("connection
/// refused", the policy's refusal) — but not the URL, which can hold a webhook's secret path.
pub fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_redirect() {
        "redirect failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        let text = s.to_string();
        if text != last && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}
