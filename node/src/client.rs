//! A small HTTP/1.1 JSON client for the CLI commands that talk to a running node
//! (`inferadb actors`, `inferadb bench`).

use std::error::Error;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A keep-alive HTTP client bound to one node's base address.
#[derive(Clone)]
pub struct NodeClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
}

impl NodeClient {
    /// A client for `address` (`127.0.0.1:8080` or `http://127.0.0.1:8080`).
    pub fn new(address: &str) -> NodeClient {
        let base = if address.starts_with("http://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", address.trim_end_matches('/'))
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        NodeClient {
            base,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, Box<dyn Error + Send + Sync>> {
        let bytes = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let response = self.client.request(request.body(Full::new(bytes))?).await?;
        let status = response.status().as_u16();
        let collected = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&collected).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}
