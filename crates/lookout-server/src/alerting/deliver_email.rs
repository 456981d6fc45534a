//! Email notifications over SMTP (lettre): implicit TLS, STARTTLS or plain, with optional
//! authentication, to an SMTP server the outbound policy allows. The channel's config: `smtp_host`, `smtp_port`, `security` (`starttls`,
//! `tls`, `none`), `username`, `password` (sealed), `from`, `to`.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use super::deliver::Message;
use super::Alerting;
use lookout_store::alerting::ChannelRow;

/// Sends `msg` to the channel's address.
pub async fn send(a: &Alerting, channel: &ChannelRow, msg: &Message) -> Result<(), String> {
    let text = msg.markdown(|label, url| format!("{label}: {url}"));
    let html = format!(
        "<p><strong>{}</strong></p><p>{} · {} urgency · incident #{}</p>\
         <p><a href=\"{}\">Open incident</a> · <a href=\"{}\">Acknowledge</a> · \
         <a href=\"{}\">Resolve</a></p>{}",
        crate::ui::escape(&msg.headline()),
        crate::ui::escape(&msg.status),
        crate::ui::escape(&msg.urgency),
        msg.incident_id,
        crate::ui::escape(&msg.url),
        crate::ui::escape(&msg.acknowledge_url),
        crate::ui::escape(&msg.resolve_url),
        match (&msg.runbook_url, &msg.runbook_summary) {
            (Some(u), s) => format!(
                "<p>Runbook: <a href=\"{}\">{}</a></p>",
                crate::ui::escape(u),
                crate::ui::escape(s.as_deref().unwrap_or("open"))
            ),
            (None, _) => String::new(),
        }
    );
    send_mail(a, channel, &msg.headline(), text, html).await
}

/// Sends one email with a plain-text and an HTML part through the channel's SMTP server.
pub async fn send_mail(
    a: &Alerting,
    channel: &ChannelRow,
    subject: &str,
    text: String,
    html: String,
) -> Result<(), String> {
    let cfg = &channel.config;
    let field = |k: &str| {
        cfg.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let host = field("smtp_host");
    let to: Mailbox = field("to").parse().map_err(|e| format!("to: {e}"))?;
    let from: Mailbox = field("from").parse().map_err(|e| format!("from: {e}"))?;
    let port = cfg
        .get("smtp_port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok());
    let security = cfg
        .get("security")
        .and_then(Value::as_str)
        .unwrap_or("starttls");
    // The server is resolved once and judged by the outbound policy, and lettre connects to
    // the judged address; certificates are still checked against the host's name.
    let port = port.unwrap_or(match security {
        "tls" => lettre::transport::smtp::SUBMISSIONS_PORT,
        "none" => lettre::transport::smtp::SMTP_PORT,
        _ => lettre::transport::smtp::SUBMISSION_PORT,
    });
    let addr = lookout_outbound::resolve(a.outbound(), &host, port)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let tls = |host: &str| {
        TlsParameters::new(host.trim_start_matches('[').trim_end_matches(']').into())
            .map_err(|e| format!("SMTP settings: {e}"))
    };
    let tls = match security {
        "tls" => Tls::Wrapper(tls(&host)?),
        "none" => Tls::None,
        _ => Tls::Required(tls(&host)?),
    };
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .tls(tls);
    let user = field("username");
    if !user.is_empty() {
        let password = match cfg.get("password").and_then(Value::as_str) {
            Some(p) => a.sealer().open(p)?,
            None => String::new(),
        };
        builder = builder.credentials(Credentials::new(user, password));
    }
    let transport = builder
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    let email = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| format!("building the email: {e}"))?;
    transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}
