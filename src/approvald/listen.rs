//! Accepting connections: TCP (`host:port`, optionally HTTPS with rustls and ring) or a unix
//! socket (mode 0660), behind one [`axum::serve::Listener`].
//!
//! An acceptor task per socket accepts, does the TLS handshake (with a deadline, on its own
//! task, so a slow client cannot hold up others) and hands finished connections over a
//! channel. A semaphore bounds the connections open at once ([`MAX_CONNECTIONS`]): at the
//! limit the acceptor stops accepting and the kernel's backlog queues the rest.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::config::Listen;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The peer, for logs: `ip:port`, or `unix` for the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote(pub String);

enum Inner {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Unix(UnixStream),
}

/// An accepted connection; holds its share of [`MAX_CONNECTIONS`] until closed.
pub struct Conn {
    inner: Inner,
    _permit: OwnedSemaphorePermit,
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match &mut $self.get_mut().inner {
            Inner::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Inner::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            Inner::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// The listener axum serves from.
pub struct Incoming {
    rx: mpsc::Receiver<(Conn, Remote)>,
    local: Remote,
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = Remote;

    async fn accept(&mut self) -> (Conn, Remote) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor is gone (it never stops on its own): wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Remote> {
        Ok(self.local.clone())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Incoming>> for Remote {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Incoming>) -> Remote {
        stream.remote_addr().clone()
    }
}

/// Loads a certificate chain and key (PEM) into a TLS acceptor.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_cert {} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A bound socket, not yet accepting.
pub enum Bound {
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
    Unix(UnixListener, PathBuf),
}

/// Binds `listen` (a stale socket file from a previous run is replaced; anything else at
/// that path is not).
pub async fn bind(listen: &Listen, tls: Option<tokio_rustls::TlsAcceptor>) -> Result<Bound, String> {
    match listen {
        Listen::Tcp(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            Ok(Bound::Tcp(l, tls))
        }
        Listen::Unix(path) => {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if !m.file_type().is_socket() {
                    return Err(format!(
                        "cannot listen on {}: something other than a socket is there; remove it or choose another path",
                        path.display()
                    ));
                }
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(format!(
                        "cannot listen on {}: another process is serving on it",
                        path.display()
                    ));
                }
                let _ = std::fs::remove_file(path);
            }
            let l =
                UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
            Ok(Bound::Unix(l, path.clone()))
        }
    }
}

impl Bound {
    /// The address clients use (with the port the kernel chose for `:0`).
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l, _) => l.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
            Bound::Unix(_, p) => p.display().to_string(),
        }
    }

    /// Starts accepting; connections arrive through the returned listener.
    pub fn start(self) -> Incoming {
        let (tx, rx) = mpsc::channel(64);
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let local = Remote(self.describe());
        match self {
            Bound::Tcp(l, tls) => {
                tokio::spawn(accept_tcp(l, tls, limit, tx));
            }
            Bound::Unix(l, _) => {
                tokio::spawn(accept_unix(l, limit, tx));
            }
        }
        Incoming { rx, local }
    }
}

async fn pause_after(e: &io::Error) {
    // EMFILE and friends: back off instead of spinning; the error is transient or the
    // operator will see it in the log.
    super::log::line(super::log::Level::Error, "accept failed").field("error", e.to_string()).emit();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn accept_tcp(
    l: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limit: Arc<Semaphore>,
    tx: mpsc::Sender<(Conn, Remote)>,
) {
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        let (stream, addr) = match l.accept().await {
            Ok(s) => s,
            Err(e) => {
                pause_after(&e).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let remote = Remote(addr.to_string());
        match &tls {
            None => {
                if tx.send((Conn { inner: Inner::Tcp(stream), _permit: permit }, remote)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let _ = tx
                                .send((Conn { inner: Inner::Tls(Box::new(s)), _permit: permit }, remote))
                                .await;
                        }
                        Ok(Err(e)) => super::log::line(super::log::Level::Warn, "tls handshake failed")
                            .field("remote", remote.0)
                            .field("error", e.to_string())
                            .emit(),
                        Err(_) => super::log::line(super::log::Level::Warn, "tls handshake timed out")
                            .field("remote", remote.0)
                            .emit(),
                    }
                });
            }
        }
    }
}

async fn accept_unix(l: UnixListener, limit: Arc<Semaphore>, tx: mpsc::Sender<(Conn, Remote)>) {
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else { return };
        match l.accept().await {
            Ok((stream, _)) => {
                let c = Conn { inner: Inner::Unix(stream), _permit: permit };
                if tx.send((c, Remote("unix".into()))).await.is_err() {
                    return;
                }
            }
            Err(e) => pause_after(&e).await,
        }
    }
}
