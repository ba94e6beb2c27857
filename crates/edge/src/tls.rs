//! Native TLS for the TCP listeners (rustls): a [`Tls`] holds the certificate
//! chain and key loaded from two PEM files and can [`reload`](Tls::reload) them
//! while the server runs.
//!
//! A reload reads both files again and swaps the configuration used for *new*
//! handshakes; connections already established keep the session they have, so
//! certificates rotate without dropping anyone. A reload that fails (missing
//! file, no certificate, a key that does not match) keeps the old configuration.
//! Handshakes run in the connection's own task, never in the accept loop, under
//! [`HANDSHAKE_TIMEOUT`]; failures are counted (`switchboard_tls_handshake_errors_total`).
//! Only HTTP/1.1 is offered (ALPN `http/1.1`). Unix socket listeners stay plain.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// `certificate file` or `key file`.
        what: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate file has no PEM `CERTIFICATE` block.
    #[error("{0} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate(String),
    /// The key file has no usable PEM private key.
    #[error(
        "{path} holds no usable PEM private key (expected PKCS#8, PKCS#1 or SEC1: -----BEGIN PRIVATE KEY-----): {detail}"
    )]
    NoKey {
        /// The path.
        path: String,
        /// The parser's detail.
        detail: String,
    },
    /// rustls refused the pair (for example the key does not match the certificate).
    #[error("the certificate and key cannot be used together: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

/// What a successful [`Tls::reload`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The files hold a different certificate chain or key; new handshakes use it.
    Changed,
    /// The files hold what was already loaded.
    Unchanged,
}

/// Reloadable TLS settings for the listeners; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<RwLock<Loaded>>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    /// The PEM bytes of both files, to tell whether a reload changed anything.
    files: (Vec<u8>, Vec<u8>),
    certificates: usize,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate chain at `cert` and the private key at `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let loaded = load(cert, key)?;
        Ok(Tls {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: Arc::new(RwLock::new(loaded)),
        })
    }

    /// Reads the files again; on success new handshakes use what they hold,
    /// on failure the previous certificates stay in use.
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        let fresh = load(&self.cert_path, &self.key_path)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.files == fresh.files {
            return Ok(Reloaded::Unchanged);
        }
        *current = fresh;
        Ok(Reloaded::Changed)
    }

    /// The acceptor for a new connection (a snapshot: a later reload does not affect it).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .acceptor
            .clone()
    }

    /// Certificates in the loaded chain.
    pub fn chain_len(&self) -> usize {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .certificates
    }

    /// The certificate file's path.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Loaded, TlsError> {
    let cert_pem = read("certificate file", cert_path)?;
    let key_pem = read("key file", key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: key_path.display().to_string(),
        detail: e.to_string(),
    })?;
    let certificates = chain.len();
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        files: (cert_pem, key_pem),
        certificates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sb-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let d = scratch("bad");
        let cert = d.join("cert.pem");
        let key = d.join("key.pem");
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("certificate file") && e.contains("cert.pem"),
            "{e}"
        );
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
