//! TLS certificate checks: handshake, then report days until expiry and whether the chain verifies.
//!
//! The handshake always completes (a recording verifier accepts after noting the real verdict),
//! so an invalid or self-signed certificate still reports its expiry: users want both facts.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{cert_not_after, resolve, Probe};
use crate::spec::MonitorSpec;
use lookout_outbound::NetPolicy;

/// The web PKI roots and crypto provider, built once.
pub(crate) struct Roots {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Mutex<Option<Result<(), String>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let r = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map(|_| ())
            .map_err(|e| e.to_string());
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(r);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl Roots {
    pub(crate) fn new() -> Roots {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Roots {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    pub(crate) async fn probe(&self, policy: &NetPolicy, spec: &MonitorSpec) -> Probe {
        let mut p = Probe::default();
        let (host, port) = match (&spec.url, &spec.host) {
            (Some(u), _) => match reqwest::Url::parse(u) {
                Ok(u) => (
                    u.host_str().unwrap_or_default().to_string(),
                    u.port_or_known_default().unwrap_or(443),
                ),
                Err(e) => {
                    p.error = Some(e.to_string());
                    return p;
                }
            },
            (None, Some(h)) => (h.clone(), spec.port.unwrap_or(443)),
            (None, None) => {
                p.error = Some("no target".into());
                return p;
            }
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addr = match resolve(policy, &host, port).await {
            Ok(a) => a,
            Err(e) => {
                p.error = Some(e);
                return p;
            }
        };
        p.obs.ip = Some(addr.ip().to_string());
        let verifier = match WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            self.provider.clone(),
        )
        .build()
        {
            Ok(v) => Arc::new(Recording {
                inner: v,
                verdict: Mutex::new(None),
            }),
            Err(e) => {
                p.error = Some(format!("TLS setup: {e}"));
                return p;
            }
        };
        let config = match rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth(),
            Err(e) => {
                p.error = Some(format!("TLS setup: {e}"));
                return p;
            }
        };
        let Ok(name) = ServerName::try_from(host.clone()) else {
            p.error = Some(format!("{host:?} is not a TLS server name"));
            return p;
        };
        let started = Instant::now();
        let tcp = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                p.error = Some(super::reason::cannot_connect(
                    &super::tcp::target(&host, port, addr),
                    &e,
                ));
                return p;
            }
        };
        let stream = match tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let why = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .map_or_else(|| super::reason::io_words(&e), |t| t.to_string());
                p.error = Some(format!("TLS handshake failed with {host}:{port}: {why}"));
                return p;
            }
        };
        p.obs.connected = true;
        p.obs.response_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first());
        p.cert_expires_at = leaf.and_then(|c| cert_not_after(c.as_ref()));
        if let Some(exp) = p.cert_expires_at {
            p.obs.certificate_expiration_ms = Some(exp - lookout_core::time::now_ms());
        }
        let verdict = verifier.verdict.lock().ok().and_then(|v| v.clone());
        p.chain_valid = Some(matches!(verdict, Some(Ok(()))));
        if let Some(Err(why)) = verdict {
            p.obs.body = Some(why);
        }
        p
    }
}
