//! The gateway's fan-out path: one tick serialized once, its bytes written to N WebSocket
//! connections over loopback, until every client has read it.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use tickcast_schemas::protocol::ServerMessage;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

async fn pairs(n: usize) -> (Vec<WebSocketStream<TcpStream>>, Vec<WebSocketStream<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut servers, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        servers.push(WebSocketStream::from_raw_socket(server, Role::Server, Some(config)).await);
        clients.push(WebSocketStream::from_raw_socket(client, Role::Client, Some(config)).await);
    }
    (servers, clients)
}

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("gateway/fanout");
    group.sample_size(20);
    for n in [10usize, 100, 1000] {
        let (mut servers, mut clients) = runtime.block_on(pairs(n));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("serialize_once_send_to", n), &n, |b, _| {
            b.iter(|| {
                runtime.block_on(async {
                    let tick = ServerMessage::Tick {
                        step: 1234,
                        value: 17,
                        round: 8,
                        broken: false,
                        scheduled_at: 1_764_000_000_000,
                        server_timestamp: 1_764_000_000_001,
                    };
                    let frame = Utf8Bytes::from(tick.to_json());
                    for server in &mut servers {
                        server.send(Message::Text(frame.clone())).await.unwrap();
                    }
                    for client in &mut clients {
                        client.next().await.unwrap().unwrap();
                    }
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
