//! A small WebSocket client for tests: connect to a project's stream and read typed events.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub struct ProjectSocket {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl ProjectSocket {
    /// Connects to `/projects/{id}/ws` (with `?since=` when given) and reads the `hello`.
    pub async fn connect(
        worker_url: &str,
        id: &str,
        since: Option<u64>,
    ) -> anyhow::Result<(ProjectSocket, Value)> {
        let mut url = format!("{}/projects/{id}/ws", worker_url.replacen("http", "ws", 1));
        if let Some(s) = since {
            url.push_str(&format!("?since={s}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(&url).await?;
        let mut s = ProjectSocket { ws };
        let hello = s.next().await?;
        anyhow::ensure!(hello["type"] == "hello", "first event was {hello}");
        Ok((s, hello))
    }

    /// The next event, or an error after 20 s of silence.
    pub async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .map_err(|_| anyhow::anyhow!("no WebSocket event within 20 s"))?
                .ok_or_else(|| anyhow::anyhow!("WebSocket closed"))??;
            match m {
                Message::Text(t) => return Ok(serde_json::from_str(&t)?),
                Message::Close(c) => anyhow::bail!("WebSocket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Reads events until one of type `ty` arrives; returns it and everything before it.
    pub async fn until(&mut self, ty: &str) -> anyhow::Result<(Value, Vec<Value>)> {
        let mut seen: Vec<Value> = Vec::new();
        loop {
            // On silence, say what came last: that is where it stopped.
            let e = self.next().await.map_err(|e| {
                let last: Vec<String> = seen
                    .iter()
                    .rev()
                    .take(80)
                    .rev()
                    .map(|v| v.to_string().chars().take(300).collect())
                    .collect();
                anyhow::anyhow!("{e} (waiting for {ty}); last events:\n{}", last.join("\n"))
            })?;
            if e["type"] == ty {
                return Ok((e, seen));
            }
            seen.push(e);
        }
    }

    pub async fn send(&mut self, v: &Value) -> anyhow::Result<()> {
        self.ws.send(Message::Text(v.to_string().into())).await?;
        Ok(())
    }

    /// Whatever arrives within `wait`, without failing when nothing does.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(wait, self.ws.next()).await
        {
            if let Ok(v) = serde_json::from_str(&t) {
                out.push(v);
            }
        }
        out
    }
}

/// Opens a WebSocket at `url` with extra request headers (cookie, origin, authorization).
/// `Ok(socket)` on 101; `Err(status)` with the HTTP status the server refused the upgrade with
/// (0 when the failure was not an HTTP answer).
pub async fn open_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<ProjectSocket, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().map_err(|e| (0, e.to_string()))?;
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| (0, e.to_string()))?,
            v.parse()
                .map_err(|_| (0, format!("bad header value for {k}")))?,
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ProjectSocket { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => Err((0, e.to_string())),
    }
}
