//! A TCP proxy a test puts between one replica and its database, to cut that replica off while
//! the others still reach it (a network partition): [`TcpProxy::cut`] closes every connection
//! through it and refuses new ones, [`TcpProxy::heal`] lets them through again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; stops with the test's runtime.
pub struct TcpProxy {
    /// Where it listens (127.0.0.1).
    pub port: u16,
    open: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:`port` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let open = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (o, c) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    // Cut: the connection is closed at once, like a reset.
                    drop(client);
                    continue;
                }
                let mut cut_rx = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        TcpProxy { port, open, cut }
    }

    /// Closes every connection through the proxy and refuses new ones until [`TcpProxy::heal`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
