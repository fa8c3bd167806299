//! A Kinesis that throttles: a proxy in front of moto that takes some records out of each
//! `PutRecords` call before it reaches the server and answers them as the service answers a shard
//! over its write limit (`ProvisionedThroughputExceededException` in that record's place).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which records of a `PutRecords` call to refuse: given the call's number (from 0), a record's
/// partition key and how many records of that key came before it in the call.
pub(crate) type Refuse = dyn Fn(usize, &str, usize) -> bool + Send + Sync;

/// The proxy: its address, and how many records it refused.
pub(crate) struct ThrottlingProxy {
    pub endpoint: String,
    pub refused: Arc<AtomicUsize>,
}

impl ThrottlingProxy {
    pub(crate) async fn start(upstream: String, refuse: Arc<Refuse>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let refused = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&refused);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, refuse, refused, calls) =
                    (upstream.clone(), Arc::clone(&refuse), Arc::clone(&counted), Arc::clone(&calls));
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &*refuse, &refused, &calls).await;
                });
            }
        });
        Self { endpoint, refused }
    }
}

/// One HTTP/1.1 message: its head (start line and headers) and body.
struct Message {
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    /// The message with `body`, its length and `Connection: close` when `close`.
    fn with_body(&self, body: Vec<u8>, close: bool) -> Vec<u8> {
        let mut head = String::new();
        for line in self.head.lines() {
            let name = line.split_once(':').map(|(k, _)| k.trim().to_ascii_lowercase());
            if matches!(name.as_deref(), Some("content-length" | "connection" | "transfer-encoding")) {
                continue;
            }
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n", body.len()));
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend(body);
        bytes
    }
}

/// Reads one message from `stream` (`None` at a clean end).
async fn read_message(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<Option<Message>> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let message = Message { head, body: Vec::new() };
            let length: usize = message.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let mut chunk = [0u8; 16 * 1024];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let body = buffer[end + 4..end + 4 + length].to_vec();
            buffer.drain(..end + 4 + length);
            return Ok(Some(Message { body, ..message }));
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `request` upstream on a connection of its own and returns the answer.
async fn forward(upstream: &str, request: &Message, body: Vec<u8>) -> std::io::Result<Message> {
    let mut server = TcpStream::connect(upstream.trim_start_matches("http://")).await?;
    server.write_all(&request.with_body(body, true)).await?;
    let mut buffer = Vec::new();
    read_message(&mut server, &mut buffer)
        .await?
        .ok_or_else(|| std::io::Error::other("the server closed without answering"))
}

async fn serve(
    mut client: TcpStream,
    upstream: &str,
    refuse: &Refuse,
    refused: &AtomicUsize,
    calls: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    while let Some(request) = read_message(&mut client, &mut buffer).await? {
        let is_put_records = request.header("x-amz-target").is_some_and(|t| t.ends_with(".PutRecords"));
        if !is_put_records {
            let answer = forward(upstream, &request, request.body.clone()).await?;
            client.write_all(&answer.with_body(answer.body.clone(), false)).await?;
            continue;
        }
        let call = calls.fetch_add(1, Ordering::Relaxed);
        let mut json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let records = json["Records"].as_array().unwrap().clone();
        let mut of_key: std::collections::HashMap<String, usize> = Default::default();
        let refused_here: Vec<bool> = records
            .iter()
            .map(|r| {
                let key = r["PartitionKey"].as_str().unwrap_or_default();
                let nth = of_key.entry(key.to_owned()).or_default();
                *nth += 1;
                refuse(call, key, *nth - 1)
            })
            .collect();
        let passed: Vec<serde_json::Value> =
            records.iter().zip(&refused_here).filter(|(_, no)| !**no).map(|(r, _)| r.clone()).collect();
        let mut accepted = if passed.is_empty() {
            Vec::new()
        } else {
            json["Records"] = serde_json::Value::Array(passed);
            let answer = forward(upstream, &request, serde_json::to_vec(&json).unwrap()).await?;
            let answer: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            answer["Records"].as_array().unwrap().clone()
        }
        .into_iter();
        let mut out = Vec::new();
        for no in &refused_here {
            if *no {
                out.push(serde_json::json!({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard shardId-000000000000",
                }));
            } else {
                out.push(accepted.next().unwrap());
            }
        }
        let failed = refused_here.iter().filter(|no| **no).count();
        refused.fetch_add(failed, Ordering::Relaxed);
        let body =
            serde_json::to_vec(&serde_json::json!({ "FailedRecordCount": failed, "Records": out })).unwrap();
        let answer = Message {
            head: "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1".into(),
            body: Vec::new(),
        };
        client.write_all(&answer.with_body(body, false)).await?;
    }
    Ok(())
}
