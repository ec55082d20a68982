//! A tiny HTTP/1.1 GET client for the operator's admin server (`/metrics`, `/readyz`,
//! `/debug/pools`): one connection per request, each under a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Errors of an admin request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting to the server failed.
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The request or the response failed on the wire.
    #[error("request to {addr}{path} failed")]
    Request {
        addr: SocketAddr,
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built.
    #[error("invalid request for {path}")]
    Build {
        path: String,
        #[source]
        source: http::Error,
    },
    /// The whole exchange did not finish in time.
    #[error("request to {addr}{path} timed out")]
    Timeout { addr: SocketAddr, path: String },
}

/// A response: status and body text.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, decoded as UTF-8 (lossy).
    pub body: String,
}

/// `GET http://{addr}{path}` with an overall deadline of `timeout`.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    match tokio::time::timeout(timeout, get_inner(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout {
            addr,
            path: path.to_owned(),
        }),
    }
}

async fn get_inner(addr: SocketAddr, path: &str) -> Result<Response, HttpError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    let request_err = |source| HttpError::Request {
        addr,
        path: path.to_owned(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(request_err)?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|source| HttpError::Build {
            path: path.to_owned(),
            source,
        })?;
    let response = sender.send_request(request).await.map_err(request_err)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(request_err)?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
