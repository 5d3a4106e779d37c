//! [`ClusterConfig`]: who this node is among its peers, where it listens, the shared secret
//! that lets nodes in, and the certificates of mutual TLS ([`TlsConfig`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::tls::Tls;

/// The shortest cookie accepted: the cookie is the only thing that keeps a stranger's node
/// out of the cluster, so it must not be guessable.
pub const MIN_COOKIE_BYTES: usize = 16;

/// How often the connector reconnects peers that have no session, unless configured.
pub const DEFAULT_RECONNECT_INTERVAL_MS: u64 = 1_000;

/// How long a forwarded proposal or read barrier waits for its answer, unless configured.
pub const DEFAULT_FORWARD_TIMEOUT_MS: u64 = 5_000;

/// How long a session may take to become ready before it is closed, unless configured.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// The cluster transport's configuration.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterConfig {
    /// This node's id (at least 1: raft-rs reserves 0 for "no node"); also its raft member
    /// id in every group.
    pub node_id: u64,
    /// The address the cluster listener binds (port 0 picks a free port; see
    /// `Cluster::local_addr`).
    pub listen: SocketAddr,
    /// The secret every member shares; a node with another cookie fails authentication.
    pub cookie: String,
    /// The other members' cluster addresses, by node id.
    #[serde(default)]
    pub peers: BTreeMap<u64, SocketAddr>,
    /// How often the connector reconnects peers that have no session; a connection attempt
    /// is also given this long.
    #[serde(default = "default_reconnect_interval_ms")]
    pub reconnect_interval_ms: u64,
    /// How long a forwarded proposal or read barrier waits for the other node's answer.
    #[serde(default = "default_forward_timeout_ms")]
    pub forward_timeout_ms: u64,
    /// How long a session (incoming or outgoing) may take to authenticate and exchange its
    /// process groups before the connector closes it: ractor_cluster itself never gives up
    /// on a peer that accepted the connection but does not answer.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Mutual TLS for every link, when set; plain TCP when absent (see the crate doc).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// The PEM files of mutual TLS between nodes. Every node has a certificate of its own, signed
/// by the cluster's certificate authority, that is valid both as a server and as a client
/// (no extended key usage, or both `serverAuth` and `clientAuth`) and that names as an IP
/// subject alternative name every address its peers dial it at (the addresses in their
/// `cluster.peers`).
///
/// Only paths are held (and printed by `Debug`): the key is read when the transport starts
/// and never kept in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This node's certificate chain (PEM): its own certificate first, then any
    /// intermediates.
    pub cert_file: PathBuf,
    /// The private key of that certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// The certificate authorities (PEM) a peer's certificate must chain to, whether the peer
    /// connects to this node or this node to it.
    pub ca_file: PathBuf,
}

fn default_reconnect_interval_ms() -> u64 {
    DEFAULT_RECONNECT_INTERVAL_MS
}

fn default_forward_timeout_ms() -> u64 {
    DEFAULT_FORWARD_TIMEOUT_MS
}

fn default_handshake_timeout_ms() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}

// Hand-written so that the cookie never reaches a log.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("listen", &self.listen)
            .field("cookie", &"<redacted>")
            .field("peers", &self.peers)
            .field("reconnect_interval_ms", &self.reconnect_interval_ms)
            .field("forward_timeout_ms", &self.forward_timeout_ms)
            .field("handshake_timeout_ms", &self.handshake_timeout_ms)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why a [`ClusterConfig`] was refused. Each message names the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `node_id` is 0.
    #[error("cluster.node_id must be at least 1 (raft-rs reserves 0 for \"no node\")")]
    NodeIdZero,
    /// `cookie` is empty.
    #[error("cluster.cookie must not be empty (it is the secret that lets nodes in)")]
    CookieEmpty,
    /// `cookie` is shorter than [`MIN_COOKIE_BYTES`].
    #[error("cluster.cookie must be at least {MIN_COOKIE_BYTES} bytes (it has {length_bytes})")]
    CookieTooShort {
        /// The cookie's length.
        length_bytes: usize,
    },
    /// `peers` lists this node itself.
    #[error("cluster.peers must not list this node's own id {node_id}")]
    PeerIsSelf {
        /// This node's id.
        node_id: u64,
    },
    /// `peers` lists node 0.
    #[error("cluster.peers: every node id must be at least 1 (found 0)")]
    PeerIdZero,
    /// An interval or timeout is 0.
    #[error("cluster.{field} must be at least 1 ms")]
    ZeroDuration {
        /// The field.
        field: &'static str,
    },
    /// A file named by `tls` cannot be used.
    #[error("cluster.tls.{field} `{}`: {problem}", path.display())]
    TlsFile {
        /// The field of [`TlsConfig`] that names the file: `cert_file`, `key_file` or
        /// `ca_file`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: TlsFileProblem,
    },
}

/// What is wrong with a file named by [`TlsConfig`] (see [`ConfigError::TlsFile`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsFileProblem {
    /// The file cannot be read.
    #[error("cannot be read: {reason}")]
    Unreadable {
        /// The operating system's answer.
        reason: String,
    },
    /// The file is not well-formed PEM.
    #[error("is not valid PEM: {reason}")]
    Malformed {
        /// The parser's answer.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` section.
    #[error("no certificate found")]
    NoCertificate,
    /// The file holds no private key section (`PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY`).
    #[error("no private key found")]
    NoPrivateKey,
    /// The key is not the key of the certificate in `cert_file`.
    #[error("is not the private key of the certificate in cluster.tls.cert_file")]
    KeyMismatch,
    /// The contents are well-formed but refused by TLS (an unsupported key type, a
    /// certificate that does not parse, a certificate authority that cannot be a trust
    /// anchor).
    #[error("refused by TLS: {reason}")]
    Refused {
        /// rustls's answer.
        reason: String,
    },
}

impl ClusterConfig {
    /// A configuration with no peers and the default intervals.
    pub fn new(node_id: u64, listen: SocketAddr, cookie: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            node_id,
            listen,
            cookie: cookie.into(),
            peers: BTreeMap::new(),
            reconnect_interval_ms: DEFAULT_RECONNECT_INTERVAL_MS,
            forward_timeout_ms: DEFAULT_FORWARD_TIMEOUT_MS,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            tls: None,
        }
    }

    /// Checks every rule, and with `tls` reads and checks its files (the first problem is
    /// reported, naming the field and the file): what [`Cluster::start`](crate::Cluster::start)
    /// would refuse.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_and_load().map(drop)
    }

    /// [`ClusterConfig::validate`], keeping the loaded TLS configuration.
    pub(crate) fn validate_and_load(&self) -> Result<Option<Tls>, ConfigError> {
        self.check_rules()?;
        self.tls.as_ref().map(Tls::load).transpose()
    }

    /// The rules that need no file.
    fn check_rules(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::NodeIdZero);
        }
        if self.cookie.is_empty() {
            return Err(ConfigError::CookieEmpty);
        }
        if self.cookie.len() < MIN_COOKIE_BYTES {
            return Err(ConfigError::CookieTooShort {
                length_bytes: self.cookie.len(),
            });
        }
        if self.peers.contains_key(&self.node_id) {
            return Err(ConfigError::PeerIsSelf {
                node_id: self.node_id,
            });
        }
        if self.peers.contains_key(&0) {
            return Err(ConfigError::PeerIdZero);
        }
        if self.reconnect_interval_ms == 0 {
            return Err(ConfigError::ZeroDuration {
                field: "reconnect_interval_ms",
            });
        }
        if self.forward_timeout_ms == 0 {
            return Err(ConfigError::ZeroDuration {
                field: "forward_timeout_ms",
            });
        }
        if self.handshake_timeout_ms == 0 {
            return Err(ConfigError::ZeroDuration {
                field: "handshake_timeout_ms",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE: &str = "a-cookie-of-16-bytes-or-more";

    fn listen() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn a_sound_configuration_passes() {
        let mut config = ClusterConfig::new(1, listen(), COOKIE);
        config.peers.insert(2, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn each_rule_is_reported_with_its_field() {
        let broken = |change: fn(&mut ClusterConfig)| {
            let mut config = ClusterConfig::new(1, listen(), COOKIE);
            change(&mut config);
            config
        };
        let cases = [
            (
                broken(|c| c.node_id = 0),
                ConfigError::NodeIdZero,
                "cluster.node_id",
            ),
            (
                broken(|c| c.cookie.clear()),
                ConfigError::CookieEmpty,
                "cluster.cookie",
            ),
            (
                broken(|c| c.cookie = "short".into()),
                ConfigError::CookieTooShort { length_bytes: 5 },
                "at least 16 bytes",
            ),
            (
                broken(|c| {
                    c.peers.insert(1, listen());
                }),
                ConfigError::PeerIsSelf { node_id: 1 },
                "cluster.peers",
            ),
            (
                broken(|c| {
                    c.peers.insert(0, listen());
                }),
                ConfigError::PeerIdZero,
                "cluster.peers",
            ),
            (
                broken(|c| c.reconnect_interval_ms = 0),
                ConfigError::ZeroDuration {
                    field: "reconnect_interval_ms",
                },
                "cluster.reconnect_interval_ms",
            ),
            (
                broken(|c| c.forward_timeout_ms = 0),
                ConfigError::ZeroDuration {
                    field: "forward_timeout_ms",
                },
                "cluster.forward_timeout_ms",
            ),
            (
                broken(|c| c.handshake_timeout_ms = 0),
                ConfigError::ZeroDuration {
                    field: "handshake_timeout_ms",
                },
                "cluster.handshake_timeout_ms",
            ),
        ];
        for (config, error, mention) in cases {
            assert_eq!(config.validate(), Err(error.clone()));
            assert!(error.to_string().contains(mention), "{error}");
        }
    }

    #[test]
    fn the_cookie_never_reaches_debug_output() {
        let config = ClusterConfig::new(1, listen(), COOKIE);
        assert!(!format!("{config:?}").contains(COOKIE));
    }

    #[test]
    fn intervals_default_when_omitted() {
        let config: ClusterConfig = serde_json::from_str(
            r#"{"node_id": 3, "listen": "127.0.0.1:0", "cookie": "a-cookie-of-16-bytes-or-more"}"#,
        )
        .unwrap();
        assert_eq!(config.reconnect_interval_ms, DEFAULT_RECONNECT_INTERVAL_MS);
        assert_eq!(config.forward_timeout_ms, DEFAULT_FORWARD_TIMEOUT_MS);
        assert_eq!(config.handshake_timeout_ms, DEFAULT_HANDSHAKE_TIMEOUT_MS);
        assert!(config.peers.is_empty());
        assert_eq!(config.tls, None);
    }

    #[test]
    fn tls_names_its_three_files_and_validate_reads_them() {
        let config: ClusterConfig = serde_json::from_str(
            r#"{"node_id": 3, "listen": "127.0.0.1:0", "cookie": "a-cookie-of-16-bytes-or-more",
                "tls": {"cert_file": "/nonexistent/node.pem", "key_file": "/nonexistent/node.key",
                        "ca_file": "/nonexistent/ca.pem"}}"#,
        )
        .unwrap();
        let tls = config.tls.clone().unwrap();
        assert_eq!(tls.key_file, PathBuf::from("/nonexistent/node.key"));
        assert!(format!("{config:?}").contains("/nonexistent/node.key"));
        let error = config.validate().unwrap_err();
        assert!(matches!(
            &error,
            ConfigError::TlsFile { field: "cert_file", path, problem: TlsFileProblem::Unreadable { .. } }
                if path == &tls.cert_file
        ));
        assert!(
            error
                .to_string()
                .starts_with("cluster.tls.cert_file `/nonexistent/node.pem`: cannot be read"),
            "{error}"
        );
        // An unknown key is a typo, not an option.
        let typo = r#"{"cert_file": "a", "key_file": "b", "ca_file": "c", "cafile": "d"}"#;
        assert!(serde_json::from_str::<TlsConfig>(typo).is_err());
    }
}
