//! Mutual TLS for the cluster links (see the crate doc's "TLS" section): loading the PEM files
//! of a [`TlsConfig`] into rustls configurations (on aws-lc-rs, ractor_cluster's own TLS
//! stack), the listener that completes each TLS handshake before handing the connection to
//! the node server, and the name a peer's certificate must carry.
//!
//! The listener is this crate's rather than ractor_cluster's: ractor_cluster's listener runs
//! the TLS handshake of each connection inline in its accept loop, with no time limit, so a
//! single connection that never sends its hello (a stalled or hostile client, or a peer that
//! lost power mid-handshake) would keep every later peer out. Here each handshake runs on its
//! own task and is given the handshake timeout.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, ActorStatus};
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{ConfigError, TlsConfig, TlsFileProblem};

const CERT_FILE: &str = "cert_file";
const KEY_FILE: &str = "key_file";
const CA_FILE: &str = "ca_file";

/// How long the listener waits after a failed accept (typically out of file descriptors)
/// before accepting again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Only TLS 1.3: every node runs this crate, so there is no older peer to speak to.
static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The loaded TLS configuration: both sides of a link.
#[derive(Clone)]
pub(crate) struct Tls {
    /// Accepts peers: this node's certificate, client certificates required and verified.
    pub(crate) acceptor: TlsAcceptor,
    /// Dials peers: the peer's certificate verified, this node's presented.
    pub(crate) connector: TlsConnector,
}

// Hand-written: the configurations hold the private key.
impl fmt::Debug for Tls {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Tls { <redacted> }")
    }
}

impl Tls {
    /// Reads and checks the files `config` names; an error names the field and the file.
    pub(crate) fn load(config: &TlsConfig) -> Result<Tls, ConfigError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let chain = read_certificates(CERT_FILE, &config.cert_file)?;
        let key = read_private_key(&config.key_file)?;
        let roots = Arc::new(read_roots(&config.ca_file)?);
        let server = server_config(config, &provider, &roots, chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .expect("invariant: aws-lc-rs's default provider speaks TLS 1.3")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|error| identity_error(config, &error))?;
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// The server side: this node's certificate, and client certificates required and verified
/// against the certificate authorities.
fn server_config(
    config: &TlsConfig,
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, ConfigError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|error| {
            file_error(
                CA_FILE,
                &config.ca_file,
                TlsFileProblem::Refused {
                    reason: error.to_string(),
                },
            )
        })?;
    ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .expect("invariant: aws-lc-rs's default provider speaks TLS 1.3")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|error| identity_error(config, &error))
}

/// The server name a peer dialled at `address` must prove: its IP address, which its
/// certificate must carry as an IP subject alternative name.
pub(crate) fn server_name(address: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(address.ip().into())
}

fn file_error(field: &'static str, path: &Path, problem: TlsFileProblem) -> ConfigError {
    ConfigError::TlsFile {
        field,
        path: path.to_path_buf(),
        problem,
    }
}

/// rustls's refusal of this node's certificate and key, blamed on the file at fault.
fn identity_error(config: &TlsConfig, error: &rustls::Error) -> ConfigError {
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            file_error(KEY_FILE, &config.key_file, TlsFileProblem::KeyMismatch)
        }
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            file_error(
                CERT_FILE,
                &config.cert_file,
                TlsFileProblem::Refused {
                    reason: error.to_string(),
                },
            )
        }
        _ => file_error(
            KEY_FILE,
            &config.key_file,
            TlsFileProblem::Refused {
                reason: error.to_string(),
            },
        ),
    }
}

fn read_file(field: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| {
        file_error(
            field,
            path,
            TlsFileProblem::Unreadable {
                reason: error.to_string(),
            },
        )
    })
}

fn malformed(field: &'static str, path: &Path, error: &pem::Error) -> ConfigError {
    file_error(
        field,
        path,
        TlsFileProblem::Malformed {
            reason: error.to_string(),
        },
    )
}

/// Every certificate in the file, in order; at least one.
fn read_certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let contents = read_file(field, path)?;
    let certificates = CertificateDer::pem_slice_iter(&contents)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| malformed(field, path, &error))?;
    if certificates.is_empty() {
        return Err(file_error(field, path, TlsFileProblem::NoCertificate));
    }
    Ok(certificates)
}

/// The first private key in the file.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let contents = read_file(KEY_FILE, path)?;
    PrivateKeyDer::from_pem_slice(&contents).map_err(|error| match error {
        pem::Error::NoItemsFound => file_error(KEY_FILE, path, TlsFileProblem::NoPrivateKey),
        error => malformed(KEY_FILE, path, &error),
    })
}

/// The certificate authorities, each of which must be usable as a trust anchor.
fn read_roots(path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(CA_FILE, path)? {
        roots.add(certificate).map_err(|error| {
            file_error(
                CA_FILE,
                path,
                TlsFileProblem::Refused {
                    reason: error.to_string(),
                },
            )
        })?;
    }
    Ok(roots)
}

/// Accepts cluster connections on `listener` until the node server stops (or the task is
/// aborted): each TLS handshake runs on its own task, is given `handshake_timeout`, and
/// only a completed one (the peer's certificate verified) reaches the node server, which
/// then runs the cookie handshake inside TLS.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    node_server: ActorRef<NodeServerMessage>,
    handshake_timeout: Duration,
) {
    loop {
        let accepted = listener.accept().await;
        if node_server.get_status() >= ActorStatus::Stopping {
            return;
        }
        match accepted {
            Ok((stream, peer_addr)) => {
                let handshake = handshake(
                    stream,
                    peer_addr,
                    acceptor.clone(),
                    node_server.clone(),
                    handshake_timeout,
                );
                tokio::spawn(handshake);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept a cluster connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Completes the server side of one TLS handshake and hands the connection to the node
/// server; a failed or late handshake closes the connection.
async fn handshake(
    stream: TcpStream,
    peer_addr: SocketAddr,
    acceptor: TlsAcceptor,
    node_server: ActorRef<NodeServerMessage>,
    limit: Duration,
) {
    let Ok(local_addr) = stream.local_addr() else {
        return; // the connection is already gone
    };
    // As ractor_cluster's own listener: frames are small and latency matters.
    stream.set_nodelay(true).ok();
    let stream = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::warn!(%peer_addr, %error, "refused a cluster connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer_addr, "closed a cluster connection: TLS handshake timed out");
            return;
        }
    };
    let opened = NodeServerMessage::ConnectionOpened {
        stream: Box::new(NetworkStream::TlsServer {
            peer_addr,
            local_addr,
            stream,
        }),
        is_server: true,
    };
    // A stopped node server has no use for the connection; dropping it closes it.
    node_server.cast(opened).ok();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };

    use super::*;

    /// A certificate authority, a node certificate it signed and a stray key, in `dir`.
    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            let mut params = CertificateParams::default();
            params
                .distinguished_name
                .push(DnType::CommonName, "test CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            let files = Files { dir };
            files.write("ca.pem", &ca.pem());
            files.write("node.pem", &cert.pem());
            files.write("node.key", &key.serialize_pem());
            files.write("stray.key", &KeyPair::generate().unwrap().serialize_pem());
            files
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, contents: &str) {
            std::fs::write(self.path(name), contents).unwrap();
        }

        fn config(&self, cert: &str, key: &str, ca: &str) -> TlsConfig {
            TlsConfig {
                cert_file: self.path(cert),
                key_file: self.path(key),
                ca_file: self.path(ca),
            }
        }
    }

    #[test]
    fn a_sound_set_of_files_loads_and_debug_shows_no_key() {
        let files = Files::new();
        let tls = Tls::load(&files.config("node.pem", "node.key", "ca.pem")).unwrap();
        assert_eq!(format!("{tls:?}"), "Tls { <redacted> }");
    }

    #[test]
    fn each_unusable_file_is_reported_with_its_field_and_path() {
        let files = Files::new();
        files.write("truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        // Well-formed PEM around three zero bytes: no certificate parses from it.
        files.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let cases = [
            (
                ("missing.pem", "node.key", "ca.pem"),
                CERT_FILE,
                "missing.pem",
            ),
            (("node.key", "node.key", "ca.pem"), CERT_FILE, "node.key"),
            (
                ("truncated.pem", "node.key", "ca.pem"),
                CERT_FILE,
                "truncated.pem",
            ),
            (("node.pem", "node.pem", "ca.pem"), KEY_FILE, "node.pem"),
            (("node.pem", "stray.key", "ca.pem"), KEY_FILE, "stray.key"),
            (("node.pem", "node.key", "node.key"), CA_FILE, "node.key"),
            (
                ("node.pem", "node.key", "garbage.pem"),
                CA_FILE,
                "garbage.pem",
            ),
        ];
        let mut problems = Vec::new();
        for ((cert, key, ca), expected_field, file) in cases {
            let error = Tls::load(&files.config(cert, key, ca)).unwrap_err();
            let ConfigError::TlsFile {
                field,
                path,
                problem,
            } = &error
            else {
                panic!("not a TLS file error: {error}");
            };
            assert_eq!((*field, path), (expected_field, &files.path(file)));
            let prefix = format!("cluster.tls.{field} `{}`: ", path.display());
            assert_eq!(error.to_string(), format!("{prefix}{problem}"));
            problems.push(problem.clone());
        }
        assert!(matches!(problems[0], TlsFileProblem::Unreadable { .. }));
        assert_eq!(problems[1], TlsFileProblem::NoCertificate);
        assert!(matches!(problems[2], TlsFileProblem::Malformed { .. }));
        assert_eq!(problems[3], TlsFileProblem::NoPrivateKey);
        assert_eq!(problems[4], TlsFileProblem::KeyMismatch);
        assert_eq!(problems[5], TlsFileProblem::NoCertificate);
        assert!(matches!(problems[6], TlsFileProblem::Refused { .. }));
    }

    #[test]
    fn the_server_name_is_the_dialled_ip() {
        let name = server_name(SocketAddr::from(([127, 0, 0, 1], 7000)));
        assert_eq!(name.to_str(), "127.0.0.1");
    }
}
