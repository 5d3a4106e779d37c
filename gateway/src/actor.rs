//! The gateway actors: [`GatewayActor`] supervises [`HttpActor`], which binds the listener
//! and runs the axum server as a task. Stopping the HTTP actor stops accepting connections
//! and drains in-flight requests (bounded by `shutdown_grace_ms`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::supervision::wait_until_unregistered;
use inferadb_messages::{GatewayMsg, HttpMsg, RestartDecision, RestartTracker};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::context::GatewayContext;
use crate::routes::router;

/// The gateway actor.
pub struct GatewayActor;

/// The gateway's state.
pub struct GatewayState {
    context: Arc<GatewayContext>,
    http: ActorRef<HttpMsg>,
    address: SocketAddr,
    /// The listening socket. The gateway owns it and hands a duplicate to each incarnation
    /// of the HTTP actor, so restarting the listener actor never closes the port: clients
    /// queue in the backlog instead of being refused, and the address never changes.
    listener: std::net::TcpListener,
    /// The HTTP actor's restart intensity.
    tracker: RestartTracker,
}

impl Actor for GatewayActor {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = Arc<GatewayContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        context: Arc<GatewayContext>,
    ) -> Result<GatewayState, ActorProcessingErr> {
        let record =
            context
                .actors
                .record(&context.gateway_name, Some(&context.root_name), "gateway");
        // A restarted gateway binds the address its first incarnation got (which matters
        // when the configuration asked for port 0).
        let wanted = context.bound_address.lock().map_or_else(
            || context.limits.http_addr.clone(),
            |bound| bound.to_string(),
        );
        let listener = bind(&wanted).await?.into_std()?;
        let address = listener.local_addr()?;
        *context.bound_address.lock() = Some(address);
        let http = start_http(&context, &myself, &listener).await?;
        record.started(myself.get_id().pid(), context.now_ms());
        let tracker = RestartTracker::with_intensity(context.limits.http_restart);
        Ok(GatewayState {
            context,
            http,
            address,
            listener,
            tracker,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<GatewayMsg>,
        message: GatewayMsg,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(record) = state.context.actors.get(&state.context.gateway_name) {
            record.handled_one();
        }
        match message {
            GatewayMsg::HttpAddress { reply } => {
                let _ = reply.send(state.address);
            }
            GatewayMsg::Drain { reply } => {
                let grace = Duration::from_millis(state.context.limits.shutdown_grace_ms + 1_000);
                let _ = state
                    .http
                    .stop_and_wait(Some("drain".into()), Some(grace))
                    .await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<GatewayMsg>,
        event: SupervisionEvent,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        let reason = match event {
            SupervisionEvent::ActorFailed(_, error) => format!("failed: {error}"),
            SupervisionEvent::ActorTerminated(_, _, Some(reason)) if reason == "killed" => {
                "killed by an operator".to_string()
            }
            _ => return Ok(()),
        };
        // The listener is the gateway's only child: restart it on the same address, or fail
        // (and let the root's restart intensity decide) if that is impossible.
        let record = state.context.actors.record(
            &state.context.http_name,
            Some(&state.context.gateway_name),
            "http_listener",
        );
        match state.tracker.on_failure(state.context.now_ms()) {
            RestartDecision::Restart => {
                record.restarting(reason);
                record.reset_mailbox();
                state.http = start_http(&state.context, &myself, &state.listener).await?;
                Ok(())
            }
            RestartDecision::Escalate => {
                record.failed_for_good(reason.clone());
                Err(format!("the HTTP listener failed too often (last: {reason})").into())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GatewayMsg>,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        let grace = Duration::from_millis(state.context.limits.shutdown_grace_ms + 1_000);
        let _ = state
            .http
            .stop_and_wait(Some("shutdown".into()), Some(grace))
            .await;
        Ok(())
    }
}

async fn start_http(
    context: &Arc<GatewayContext>,
    gateway: &ActorRef<GatewayMsg>,
    listener: &std::net::TcpListener,
) -> Result<ActorRef<HttpMsg>, ActorProcessingErr> {
    let arguments = HttpArguments {
        context: Arc::clone(context),
        listener: listener.try_clone()?,
    };
    wait_until_unregistered(&context.http_name).await;
    let (http, _) = Actor::spawn_linked(
        Some(context.http_name.clone()),
        HttpActor,
        arguments,
        gateway.get_cell(),
    )
    .await?;
    Ok(http)
}

/// What each incarnation of the HTTP actor starts from.
pub struct HttpArguments {
    context: Arc<GatewayContext>,
    /// A duplicate of the gateway's listening socket.
    listener: std::net::TcpListener,
}

/// How often, and how far apart, a restarted listener retries binding its address while the
/// previous incarnation's server lets go of it.
const BIND_ATTEMPTS: u32 = 40;
const BIND_RETRY_MS: u64 = 50;

async fn bind(address: &str) -> Result<tokio::net::TcpListener, std::io::Error> {
    let mut attempt = 1;
    loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error)
                if error.kind() == std::io::ErrorKind::AddrInUse && attempt < BIND_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(BIND_RETRY_MS)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The HTTP listener actor: binds in `pre_start`, serves until stopped.
pub struct HttpActor;

/// The HTTP actor's state.
pub struct HttpState {
    context: Arc<GatewayContext>,
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Actor for HttpActor {
    type Msg = HttpMsg;
    type State = HttpState;
    type Arguments = HttpArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<HttpMsg>,
        arguments: HttpArguments,
    ) -> Result<HttpState, ActorProcessingErr> {
        let HttpArguments { context, listener } = arguments;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let address = listener.local_addr()?;
        let (shutdown, mut stopped) = watch::channel(false);
        let app = router(Arc::clone(&context));
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "HTTP server failed");
            }
        });
        let record = context.actors.record(
            &context.http_name,
            Some(&context.gateway_name),
            "http_listener",
        );
        record.started(myself.get_id().pid(), context.now_ms());
        tracing::info!(%address, "HTTP listening");
        Ok(HttpState {
            context,
            address,
            shutdown,
            server: Some(server),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<HttpMsg>,
        message: HttpMsg,
        state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(record) = state.context.actors.get(&state.context.http_name) {
            record.handled_one();
        }
        match message {
            HttpMsg::Address { reply } => {
                let _ = reply.send(state.address);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<HttpMsg>,
        state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.shutdown.send(true);
        if let Some(server) = state.server.take() {
            let grace = Duration::from_millis(state.context.limits.shutdown_grace_ms);
            if tokio::time::timeout(grace, server).await.is_err() {
                tracing::warn!("in-flight requests did not finish within the shutdown grace");
            }
        }
        Ok(())
    }
}
