//! The HTTP client of the verbs that act through a running server's API (`--server URL` with
//! `--token`): `regress push|check`, and `query`, `report`, `pack install`, `user create` and
//! `token create` when given a server. One place for the URL, the token and how the API's
//! `{"error": {"code", "message"}}` answers become the CLI's errors.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::StatusCode;
use serde_json::Value;

/// A refusal by the server: its status and message (the API's `error.message`).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Refused {}

/// A Lookout server's API, called with a bearer token.
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: String,
}

impl Client {
    /// A client of `server` (its base URL, e.g. `http://127.0.0.1:8800`).
    pub fn new(server: &str, token: &str) -> Result<Client> {
        let base = reqwest::Url::parse(server).with_context(|| format!("--server {server}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--server {server}: an http:// or https:// URL");
        }
        Ok(Client {
            http: reqwest::Client::new(),
            base,
            token: token.to_string(),
        })
    }

    /// A client from `--server` and `--token` (or `LOOKOUT_URL` and `LOOKOUT_TOKEN`).
    pub fn from_flags(server: &str, token: Option<&str>) -> Result<Client> {
        let token = token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            anyhow!(
                "--server {server} needs an API token: --token TOKEN or LOOKOUT_TOKEN (lookout token create prints one)"
            )
        })?;
        Client::new(server, token)
    }

    /// The URL of `segments` under the base; each is percent-encoded on its own, so a name
    /// may hold `/`.
    pub fn url(&self, segments: &[&str]) -> Result<reqwest::Url> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .map_err(|()| anyhow!("--server {} cannot hold a path", self.base))?
            .pop_if_empty()
            .extend(segments);
        Ok(u)
    }

    /// Sends `req` with the token; the answer's body as text, or [`Refused`] for a status
    /// other than 2xx (the API's message, or the status alone).
    pub async fn send_text(&self, req: reqwest::RequestBuilder) -> Result<String> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("reaching {}", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("reading the answer of {}", self.base))?;
        if !status.is_success() {
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or(match status {
                    StatusCode::UNAUTHORIZED => "the token was not accepted (--token)",
                    StatusCode::FORBIDDEN => "the token's role may not do this",
                    _ => "no message",
                })
                .to_string();
            return Err(Refused { status, message }.into());
        }
        Ok(text)
    }

    /// [`Client::send_text`], read as JSON.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        let text = self.send_text(req).await?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{} answered no JSON", self.base))
    }

    /// `GET` `segments` with `query`, as JSON.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value> {
        let url = self.url(segments)?;
        self.send(self.http.get(url).query(query)).await
    }

    /// `GET` `segments` with `query`, as text.
    pub async fn get_text(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String> {
        let url = self.url(segments)?;
        self.send_text(self.http.get(url).query(query)).await
    }

    /// `POST` `body` as JSON to `segments`.
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value> {
        self.post_query(segments, &[], body).await
    }

    /// `POST` `body` as JSON to `segments` with `query`.
    pub async fn post_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value> {
        let url = self.url(segments)?;
        self.send(self.http.post(url).query(query).json(body)).await
    }
}
