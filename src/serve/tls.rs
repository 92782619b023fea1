//! HTTPS: the certificate and key of `--tls-cert` / `--tls-key` (PEM), with rustls.
//!
//! The files are read again when they change (checked every few seconds), so that a
//! renewed certificate is served without a restart; if the new files cannot be used,
//! the server keeps the certificate it has and logs why. The server speaks TLS 1.2
//! and 1.3 with rustls' safe defaults, and HTTP/1.1 inside.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::stamp::{Stamp, stamp};

/// The certificate chain and private key files of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refuses the pair.
    #[error("certificate {} and key {}: {source}", files.cert.display(), files.key.display())]
    Pair {
        /// The files.
        files: TlsFiles,
        /// Why.
        source: rustls::Error,
    },
}

/// The server's certificate, read again when its files change.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    state: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

fn stamps(files: &TlsFiles) -> Stamp {
    stamp(&[&files.cert, &files.key])
}

impl Certificates {
    /// Reads the certificate and key of `files`.
    pub fn load(files: &TlsFiles) -> Result<Certificates, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamps = stamps(files);
        let key = certified_key(files, &provider)?;
        Ok(Certificates { files: files.clone(), provider, state: RwLock::new((Arc::new(key), stamps)) })
    }

    /// A rustls configuration that serves these certificates (HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let pair = |source| TlsError::Pair { files: self.files.clone(), source };
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(pair)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Reads the files again if they changed; keeps the current certificate if the new
    /// ones cannot be used.
    pub fn refresh(&self) {
        let now = stamps(&self.files);
        if now == self.state.read().expect("certificate lock").1 {
            return;
        }
        match certified_key(&self.files, &self.provider) {
            Ok(key) => {
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate read again");
                *self.state.write().expect("certificate lock") = (Arc::new(key), now);
            }
            Err(error) => {
                tracing::error!(%error, "new TLS certificate unusable; serving the previous one");
                self.state.write().expect("certificate lock").1 = now;
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.state.read().expect("certificate lock").0.clone())
    }
}

fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, problem: String| TlsError::File { path: path.to_path_buf(), problem };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(&files.cert, "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e.to_string()))?;
    let pair = |source| TlsError::Pair { files: files.clone(), source };
    let key = CertifiedKey::from_der(chain, key, provider).map_err(pair)?;
    Ok(key)
}
