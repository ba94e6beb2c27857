//! The bare broadcast server behind the `bare-broadcast` binary: the
//! yardstick `switchboard-bench fanout --bare-url` measures pubsub against.
//!
//! Every text or binary frame any connection sends goes to every connection
//! (the sender included, as pubsub echoes to its publisher), whatever the
//! path. Each connection has one unbounded queue and one writer task that
//! feeds *all* pending frames to the socket and flushes once, the batching
//! the switchboard socket runtime does. No outbox bounds, no keepalive, no
//! metrics, no origin check: what this reaches on a machine is that
//! machine's practical fan-out ceiling with tokio-websockets. Bench only:
//! never served by `switchboard`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Limits, Message, Payload, ServerBuilder};

/// One queued frame: the payload (shared by every recipient) and whether it is text.
type Queued = (Bytes, bool);

/// Every connection's queue, by connection number.
#[derive(Default)]
struct Peers {
    next: AtomicU64,
    senders: Mutex<Vec<(u64, mpsc::UnboundedSender<Queued>)>>,
}

impl Peers {
    fn join(&self, tx: mpsc::UnboundedSender<Queued>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, tx));
        id
    }

    fn leave(&self, id: u64) {
        self.lock().retain(|(i, _)| *i != id);
    }

    fn broadcast(&self, frame: &Queued) {
        for (_, tx) in self.lock().iter() {
            let _ = tx.send(frame.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, mpsc::UnboundedSender<Queued>)>> {
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Accepts connections on `listener` and broadcasts between them, forever.
pub async fn serve(listener: TcpListener) {
    let peers = Arc::new(Peers::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, peers.clone()));
            }
            Err(e) => {
                // Out of descriptors: back off rather than spin.
                eprintln!("bare-broadcast: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, peers: Arc<Peers>) {
    let _ = stream.set_nodelay(true);
    let server = ServerBuilder::new().limits(Limits::default().max_payload_len(Some(1 << 20)));
    let Ok((_request, ws)) = server.accept(stream).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
    let id = peers.join(tx);
    let writer = tokio::spawn(async move {
        let mut pending = Vec::with_capacity(64);
        while rx.recv_many(&mut pending, usize::MAX).await > 0 {
            for (payload, text) in pending.drain(..) {
                let payload = Payload::from(payload);
                let msg = if text {
                    Message::text(payload)
                } else {
                    Message::binary(payload)
                };
                if sink.feed(msg).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        // The reader left: flush the codec's answer to the peer's Close.
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        if msg.is_text() || msg.is_binary() {
            let text = msg.is_text();
            peers.broadcast(&(msg.into_payload().into(), text));
        } else if msg.is_close() {
            break;
        }
    }
    // Dropping the queue's last sender ends the writer once it has written
    // what is pending.
    peers.leave(id);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
}
