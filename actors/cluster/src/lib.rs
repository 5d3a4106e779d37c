//! The node-to-node transport over ractor_cluster. This crate owns the links between nodes
//! (a ractor_cluster node server, authenticated by the cluster cookie and, when configured,
//! mutual TLS, and a connector that keeps every current peer linked) and the peer inbox, the one actor other nodes send
//! to. It must never decide anything about consensus (which message to send, to whom, what
//! a proposal means: that is raft's and the node's), and it must never block on the network
//! in a send: raft's [`Transport::send`](inferadb_raft::transport::Transport::send) only
//! queues, and a missing link drops the message.
//!
//! - [`ClusterConfig`]: node id, listen address, cookie, peers, intervals, and [`TlsConfig`].
//! - [`Cluster`]: starts the actors; [`Cluster::transport`] for raft, [`Cluster::propose`] and
//!   [`Cluster::read_barrier`] to forward requests, [`Cluster::add_peer`],
//!   [`Cluster::remove_peer`] and [`Cluster::peers`] to follow membership changes,
//!   [`Cluster::linked_peers`], [`Cluster::stats`].
//! - [`PeerHandler`]: what the node plugs in to receive.
//!
//! # Naming and lookup
//!
//! Node `n` is named `inferadb-<n>` in ractor_cluster, and its inbox joins the process group
//! `inferadb.peer.<n>`. When two nodes' sessions are ready, each has received the other's
//! process groups, so node `n`'s inbox appears in the local group `inferadb.peer.<n>` as a
//! remote-actor shim. Sends look the inbox up through the links book (node id → its ready
//! session), so a shim of a session that is closing is never used.
//!
//! # Wire format
//!
//! [`PeerMsg`](inferadb_messages::PeerMsg) is the only message type that crosses nodes. Its
//! ractor frame names the variant (`Raft`, `Propose`, `ReadBarrier`) and carries one payload;
//! integers are big-endian:
//!
//! - `Raft` (cast): the [`PeerEnvelope`](inferadb_raft::transport::PeerEnvelope) encoding:
//!   envelope version (1), group u64, from u64, to u64, then raft-rs's protobuf message.
//! - `Propose` (call): request = version (1), group u64, command bytes; reply = version (1),
//!   then `0` and the state machine's output, or `1` and a `ProposeError`.
//! - `ReadBarrier` (call): request = version (1), group u64; reply = version (1), then `0`
//!   and the applied index u64, or `1` and a `ProposeError`.
//! - `ProposeError`: `0` NotLeader (then `0`, or `1` and the leader id u64), `1` Dropped,
//!   `2` Unknown, `3` Failed (then the text's length u32 and its UTF-8).
//!
//! # Versioning
//!
//! Every payload starts with its format version. A node refuses a payload whose version it
//! does not speak, or whose bytes do not match the layout (short, trailing bytes, unknown
//! tag), with a typed error; it never guesses. A refused cast is dropped (raft retries); a
//! refused request is answered with an empty payload, which the caller reports as
//! [`ForwardError::Malformed`]. A frame naming a variant this build does not know is treated
//! the same way (the inbox is never stopped by what a peer sends). A format change bumps the
//! version, and a node must speak every version its peers send during a rolling upgrade.
//!
//! # Reconnecting
//!
//! Every `reconnect_interval_ms` the connector lists the node server's sessions and connects
//! to each current peer that has none (a connection attempt is given one interval). Both
//! sides do this, and ractor_cluster itself resolves simultaneous connections. A session
//! closes when its TCP connection does (ractor_cluster pings every few seconds); the links
//! book forgets it and the next round reconnects, so a restarted peer is linked again without
//! an operator. A session (incoming or outgoing) that is not ready `handshake_timeout_ms`
//! after the connector first saw it is closed, since ractor_cluster would wait on a silent
//! peer forever. A peer with another cookie fails ractor_cluster's challenge, its session is
//! closed, and it is never linked.
//!
//! # TLS
//!
//! Without [`ClusterConfig::tls`], links are plain TCP: the cookie handshake keeps nodes
//! without the cookie out (ractor_cluster's challenge never sends the cookie itself), but
//! everything else, raft messages and forwarded commands included, crosses the network in
//! the clear and can be read or altered on the way.
//!
//! With [`TlsConfig`] (PEM files, read when the transport starts; a file that cannot be used
//! is refused with [`ConfigError::TlsFile`], naming the field and the file), every link is
//! mutual TLS 1.3 (rustls on aws-lc-rs, ractor_cluster's own stack), and only TLS:
//!
//! - Encrypted and integrity-protected: every byte of a link, from the cookie handshake on
//!   (it runs inside TLS) to every payload.
//! - Authenticated both ways: the node that accepts a connection requires a client
//!   certificate and verifies it against `ca_file`; the node that dials verifies the
//!   server's certificate against `ca_file` and presents its own. A plaintext peer, or one
//!   whose certificate does not chain to `ca_file`, never links; the cookie must still match
//!   too. The certificate proves membership of the cluster, not which node a peer is: the
//!   node id a peer claims is the one in its ractor_cluster name, as without TLS.
//! - Naming rule: a peer is dialled at the socket address in `peers` (or given to
//!   [`Cluster::add_peer`]), and its certificate must carry that address's IP as an IP
//!   subject alternative name (`127.0.0.1` for a node dialled at `127.0.0.1:7000`). DNS
//!   names are not used, since peers are configured by address. A client certificate's names
//!   are not checked, only its chain, so one certificate per node serves both ways; it must
//!   allow both uses (no extended key usage, or both `serverAuth` and `clientAuth`).
//! - Each TLS handshake a node accepts is given `handshake_timeout_ms`; one that does not
//!   complete in time is closed without holding up others. ractor_cluster's own listener,
//!   which completes handshakes one at a time with no limit, is moved to a free loopback port
//!   (where it too accepts only this mutual TLS) and a listener of this crate takes the listen
//!   address.
//!
//! Certificates are read once, at start: rotating them takes a restart of the node.
//!
//! TLS is all or nothing across a cluster: turn it on for every node at once (stop all, then
//! start all with `tls`), never node by node. A TLS node refuses plaintext peers, and a
//! plaintext node dialled by a TLS node does worse than refuse it: ractor_cluster reads the
//! TLS hello as a frame length and aborts the process allocating it. (The same holds for any
//! stray bytes sent to a plaintext node's port, which is one more reason to run with TLS
//! wherever the cluster port is reachable by anything but members.)
//!
//! # Membership
//!
//! The peers start as `ClusterConfig::peers` and change at runtime as the node applies
//! membership changes; the connector reads them afresh at every round.
//! [`Cluster::add_peer`] makes a node a peer (a reconnect round starts at once);
//! [`Cluster::remove_peer`] stops dialling it, closes its ready session and cuts it off until
//! it is added again: what is addressed to it is dropped and counted as without a link, and
//! the connector closes any session with it (a removed node may not have applied its removal
//! and dial again, or an attempt of ours was under way). A node that is neither a peer nor
//! removed (a node about to be added, or one whose peers list this node but not the reverse)
//! may open a session to this node and is answered over it, but it is not dialled and
//! [`Cluster::linked_peers`] does not list it. Both changes are idempotent, since every
//! member applies the same change, possibly twice after a restart; removals are not
//! persisted, so a restarted node applies them again.
//!
//! At most one [`Cluster`] runs per process: ractor_cluster numbers remote actors per node
//! server but registers them in ractor's process-global registries.
//!
//! # Counters
//!
//! [`ClusterStats`]: messages sent (raft envelopes queued on a link, forwarded requests
//! answered or timed out), messages dropped for lack of a link (including forwarded requests
//! refused with [`ForwardError::NoLink`]), messages received (inbound payloads decoded and
//! handed to the handler) and messages refused (inbound payloads, or replies to forwarded
//! requests, that did not decode, and raft envelopes addressed to another node).

mod cluster;
mod config;
mod connector;
mod error;
mod handler;
mod inbox;
mod links;
mod peers;
mod stats;
mod tls;
mod transport;

pub use cluster::Cluster;
pub use config::{
    ClusterConfig, ConfigError, TlsConfig, TlsFileProblem, DEFAULT_FORWARD_TIMEOUT_MS,
    DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_RECONNECT_INTERVAL_MS, MIN_COOKIE_BYTES,
};
pub use error::{ClusterError, ForwardError, PeerChangeError};
pub use handler::{HandlerFuture, PeerHandler};
pub use stats::ClusterStats;
